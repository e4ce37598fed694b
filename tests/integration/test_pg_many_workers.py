"""Many workers on one PostgreSQL: 4 processes x 4 threads over 1,000 tiny real pack jobs.

Every job is claimed and completed exactly once, each has exactly one piece, no transaction
deadlocked (PostgreSQL's own deadlock counter for the database), and a job that hit a conflict
was retried to completion rather than left failed. Claim latency and claims per second are
measured in bench/claims.py, not here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from dataset_worker.db import Database
from dataset_worker.db.models import Car, Job, JobState, JobType
from tests.support.jobs import add_job, make_local_preparation, run_job

PROCESSES = 4
THREADS = 4
JOBS = 1000  # enough for every thread to claim against all the others many times


def _deadlocks(db: Database) -> int:
    with db.read() as session:
        return int(
            session.scalar(
                text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            )
            or 0
        )


def _worker(database_url: str, state: Path, log: Path) -> subprocess.Popen[bytes]:
    """One worker process; its output goes to `log`, a file: a pipe that nobody reads while
    the test waits for another process fills up and blocks the worker's logging."""
    command = [sys.executable, "-m", "dataset_worker", "--database-url", database_url]
    command += ["--state-dir", str(state), "run", "--exit-on-complete", "--exit-on-error"]
    command += ["--min-interval", "100ms", "--max-interval", "1s"]
    command += ["--concurrency", str(THREADS), "--no-enable-scan", "--no-enable-dag"]
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = 500) -> tuple[int, str]:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode, log.read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_sixteen_workers_share_a_thousand_jobs_exactly_once(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    for index in range(JOBS):
        folder = source / f"d{index % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:04d}.bin").write_bytes(index.to_bytes(4, "big") * 25)  # 100 bytes
    # Inline (no output folder) and a 300-byte max size: one tiny pack job per file, each
    # recording its blocks and directory entries, with no CAR file to write.
    rows = make_local_preparation(db, "many", source, None, max_size=300, min_piece_size=256)
    scan = run_job(db, add_job(db, rows.attachment_id, JobType.SCAN))
    assert scan.state is JobState.COMPLETE, scan.error
    with db.read() as session:
        pack_ids = set(session.scalars(select(Job.id).where(Job.type == JobType.PACK)))
    assert len(pack_ids) == JOBS
    deadlocks_before = _deadlocks(db)

    logs = [tmp_path / f"worker-{index}.log" for index in range(PROCESSES)]
    workers = [_worker(database_url, tmp_path / "state", log) for log in logs]
    results = [_finish(proc, log) for proc, log in zip(workers, logs, strict=True)]
    for code, out in results:
        assert code == 0, out[-4000:]

    claims = Counter(
        int(match)
        for _, out in results
        for match in re.findall(r"job\.claimed job=(\d+) type=pack", out)
    )
    assert set(claims) == pack_ids  # none lost
    assert max(claims.values()) == 1  # none run twice
    assert sum(1 for _, out in results if "job.complete" in out) >= 2  # the work was shared
    assert _deadlocks(db) == deadlocks_before
    with db.read() as session:
        states = Counter(session.scalars(select(Job.state).where(Job.type == JobType.PACK)))
        cars_per_job = Counter(
            dict(
                session.execute(
                    select(Car.job_id, func.count())
                    .where(Car.job_id.is_not(None))
                    .group_by(Car.job_id)
                ).all()
            )
        )
    assert states == {JobState.COMPLETE: JOBS}  # a conflict was retried, never left failed
    assert set(cars_per_job) == pack_ids
    assert set(cars_per_job.values()) == {1}
