"""Writing a job's outcome. Every update is guarded by ownership.

`AND worker_id = :me AND state = 'processing'` fixes Singularity's unguarded updates (docs/architecture.md#worker-thread-loop):
a job that was paused, reaped and reclaimed, or restarted meanwhile is left exactly as it is.
Each function returns True when the row was still ours and got updated.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.clock import shifted_now
from dataset_worker.db.models import Job, JobState, utcnow
from dataset_worker.worker.runtime.retry import RetryPolicy

CompletionHook = Callable[[Session, int], None]
"""Runs in the transaction that marks job `job_id` complete, after that write succeeded."""


def complete_job(
    db: Database, job_id: int, worker_id: str, on_complete: CompletionHook | None = None
) -> bool:
    """processing → complete: owner and errors cleared, finished_at set.

    `on_complete(session, job_id)` runs in the same transaction, only when the row was ours:
    what it writes commits together with the completion or not at all.
    """
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
        on_complete,
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
    """processing → ready (shutdown): claimable again by anyone, times cleared; errors cleared
    too, except the last error of a job that is being retried."""
    return _update_owned(
        db,
        job_id,
        worker_id,
        dict(
            state=JobState.READY,
            worker_id=None,
            error_message=case((Job.attempts > 0, Job.error_message), else_=""),
            error_stack_trace=case((Job.attempts > 0, Job.error_stack_trace), else_=""),
            started_at=None,
            finished_at=None,
        ),
    )


class Failure(enum.Enum):
    """What `fail_or_retry` wrote."""

    RETRY = "retry"  # back to `ready`, claimable again after next_attempt_at
    ERROR = "error"  # `error`: permanent, or out of attempts
    NOT_OWNED = "not owned"  # nothing: the row is not ours any more


@dataclass(frozen=True)
class FailureRecord:
    """The outcome of a failed attempt: what was written, the attempts so far, and the wait
    before the next attempt (seconds, retries only)."""

    kind: Failure
    attempts: int = 0
    delay: float = 0.0


def fail_or_retry(
    db: Database,
    job_id: int,
    worker_id: str,
    message: str,
    stack_trace: str,
    *,
    transient: bool,
    policy: RetryPolicy,
    rand: Callable[[], float] = random.random,
) -> FailureRecord:
    """Record a failed attempt: attempts + 1, the error kept as the last error; then `ready`
    after a backoff when the failure is transient and attempts remain, else `error`.

    The backoff is counted from the database's clock (as the claim query compares it).
    """

    def write(session: Session) -> FailureRecord:
        attempts = session.scalar(
            select(Job.attempts)
            .where(Job.id == job_id, Job.worker_id == worker_id, Job.state == JobState.PROCESSING)
            .with_for_update()
        )
        if attempts is None:
            return FailureRecord(Failure.NOT_OWNED)
        record = _decide(attempts, transient, policy, rand)
        values: dict[str, Any] = dict(
            worker_id=None,
            attempts=record.attempts,
            error_message=message,
            error_stack_trace=stack_trace,
        )
        if record.kind is Failure.RETRY:
            values.update(
                state=JobState.READY,
                next_attempt_at=shifted_now(db, record.delay),
                started_at=None,
                finished_at=None,
            )
        else:
            values.update(state=JobState.ERROR, finished_at=utcnow())
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return record

    return db.run_write(write)


def _decide(
    failed_before: int, transient: bool, policy: RetryPolicy, rand: Callable[[], float]
) -> FailureRecord:
    """RETRY with its delay when the failure is transient and attempts remain, else ERROR."""
    failed = failed_before + 1
    if transient and not policy.gives_up(failed):
        return FailureRecord(Failure.RETRY, failed, policy.delay(failed_before, rand))
    return FailureRecord(Failure.ERROR, failed)


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


def _update_owned(
    db: Database,
    job_id: int,
    owner: str,
    values: dict[str, Any],
    then: CompletionHook | None = None,
) -> bool:
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
        owned = int(result.rowcount) == 1  # type: ignore[attr-defined]
        if owned and then is not None:
            then(session, job_id)
        return owned

    return db.run_write(write)
