"""Writing a job's outcome. Every update is guarded by ownership.

`AND worker_id = :me AND state = 'processing'` fixes Singularity's unguarded updates (spec §3.2):
a job that was paused, reaped and reclaimed, or restarted meanwhile is left exactly as it is.
Each function returns True when the row was still ours and got updated.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, utcnow


def complete_job(db: Database, job_id: int, worker_id: str) -> bool:
    """processing → complete: owner and errors cleared, finished_at set."""
    return _update_owned(
        db,
        job_id,
        worker_id,
        dict(
            state=JobState.COMPLETE,
            worker_id=None,
            error_message="",
            error_stack_trace="",
            finished_at=utcnow(),
        ),
    )


def fail_job(db: Database, job_id: int, worker_id: str, message: str, stack_trace: str) -> bool:
    """processing → error with the message and the traceback, finished_at set."""
    return _update_owned(
        db,
        job_id,
        worker_id,
        dict(
            state=JobState.ERROR,
            worker_id=None,
            error_message=message,
            error_stack_trace=stack_trace,
            finished_at=utcnow(),
        ),
    )


def release_job(db: Database, job_id: int, worker_id: str) -> bool:
    """processing → ready (shutdown): claimable again by anyone, errors and times cleared."""
    return _update_owned(
        db,
        job_id,
        worker_id,
        dict(
            state=JobState.READY,
            worker_id=None,
            error_message="",
            error_stack_trace="",
            started_at=None,
            finished_at=None,
        ),
    )


def release_jobs_of_workers(session: Session, worker_ids: list[str]) -> int:
    """processing → ready for every job owned by these workers; returns how many (in a transaction)."""
    if not worker_ids:
        return 0
    result = session.execute(
        update(Job)
        .where(Job.worker_id.in_(worker_ids), Job.state == JobState.PROCESSING)
        .values(state=JobState.READY, worker_id=None, started_at=None, finished_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _update_owned(db: Database, job_id: int, owner: str, values: dict[str, Any]) -> bool:
    def write(session: Session) -> bool:
        result = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.worker_id == owner,
                Job.state == JobState.PROCESSING,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]

    return db.run_write(write)
