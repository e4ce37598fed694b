"""Run one pack job for real, but stop right after its CAR is published: the recording step
hangs, so the test can SIGKILL this process in the window between publish and record.

Usage: python -m tests.integration.kill_after_publish DATABASE_URL JOB_ID WORKER_ID MARKER
(MARKER: a file created once the CAR is published, for the test to wait on.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from dataset_worker.db import Database
from dataset_worker.worker.jobs.pack import job as pack_job
from tests.support.jobs import run_job


def main() -> None:
    url, job_id, worker_id, marker = sys.argv[1:5]

    def hang(*_args: Any, **_kwargs: Any) -> None:
        Path(marker).touch()
        while True:  # until SIGKILL
            time.sleep(1)

    setattr(pack_job, "record_or_unpublish", hang)  # noqa: B010 - a module attribute mypy hides
    run_job(Database(url), int(job_id), worker_id=worker_id)


if __name__ == "__main__":
    main()
