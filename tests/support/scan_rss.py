"""Run one scan in this process and print its peak RSS growth (for tests/integration/test_scan_memory.py).

Usage: python -m tests.support.scan_rss DATABASE_URL SOURCE_FOLDER MAX_SIZE NAME

Prints one JSON line: the peak resident set growth during the scan in bytes, and the number of
pack jobs it planned. Peak RSS is read from /proc/self/status (VmHWM), reset before the scan
through /proc/self/clear_refs so that the set-up does not count.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sqlalchemy import func, select

from dataset_worker.db import open_database
from dataset_worker.db.models import Job, JobState, JobType
from tests.support.jobs import add_job, make_local_preparation, run_job


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def main() -> None:
    url, source, max_size, name = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    db = open_database(url)
    rows = make_local_preparation(
        db, name, source, source.parent / "out", max_size=max_size, min_piece_size=128
    )
    job = add_job(db, rows.attachment_id, JobType.SCAN)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS")
    run = run_job(db, job)
    peak = _status("VmHWM")
    assert run.state is JobState.COMPLETE, run.error
    with db.read() as session:
        jobs = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.type == JobType.PACK, Job.attachment_id == rows.attachment_id)
        )
    print(json.dumps({"growth": peak - before, "jobs": jobs}))


if __name__ == "__main__":
    main()
