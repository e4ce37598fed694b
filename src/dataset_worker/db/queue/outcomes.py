"""processing → complete, error or ready: what the owning worker thread writes when a job ends.

See docs/architecture.md#outcomes-and-ownership. Every write is guarded by ownership: `WHERE id
= :job AND worker_id = :me AND state = 'processing'`, so a job that was paused, reaped and
claimed by someone else, or restarted meanwhile is left exactly as it is. Each function returns
whether the row was still ours.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from dataset_worker.db.clock import shifted_now
from dataset_worker.db.engine import Database
from dataset_worker.db.models import Job, JobState, utcnow

CompletionHook = Callable[[Session, int], None]
"""Runs in the transaction that marks job `job_id` complete, after that write succeeded (the
auto chain, worker/jobs/chain.py)."""


class RetryRule(Protocol):
    """The attempts budget and the backoff (worker/runtime/retry.py RetryPolicy is one)."""

    def gives_up(self, attempts: int) -> bool:
        """True when `attempts` failed attempts use up the budget."""
        ...

    def delay(self, failed_before: int, rand: Callable[[], float] = ...) -> float:
        """Seconds to wait before the next attempt."""
        ...


def complete_job(
    db: Database, job_id: int, worker_id: str, on_complete: CompletionHook | None = None
) -> bool:
    """processing → complete: owner and errors cleared, finished_at set.

    SQL: `UPDATE jobs SET state='complete', worker_id=NULL, error_message='',
    error_stack_trace='', finished_at=now WHERE id=:job AND worker_id=:me AND
    state='processing'`, then, only when that matched the row, `on_complete(session, job_id)`
    in the same transaction (the auto-chain hook's call point): what it writes commits together
    with the completion or not at all. Locking: the UPDATE takes the row lock (PostgreSQL);
    SQLite holds the write lock (BEGIN IMMEDIATE).
    """
    return db.run_write(lambda session: complete_in(session, job_id, worker_id, on_complete))


def complete_in(
    session: Session, job_id: int, worker_id: str, on_complete: CompletionHook | None = None
) -> bool:
    """`complete_job`'s writes in the caller's transaction (db/queue/handover.py)."""
    return _write_owned(session, job_id, worker_id, _completed_values(), on_complete)


def fail_job(db: Database, job_id: int, worker_id: str, message: str, stack_trace: str) -> bool:
    """processing → error with the message and the traceback, finished_at set.

    SQL: `UPDATE jobs SET state='error', worker_id=NULL, error_message=:m,
    error_stack_trace=:t, finished_at=now WHERE id=:job AND worker_id=:me AND
    state='processing'`. Locking: the UPDATE's row lock; SQLite's write lock.
    """
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
    """processing → ready (the owner shuts down, or could not record an outcome).

    SQL: `UPDATE jobs SET state='ready', worker_id=NULL, started_at=NULL, finished_at=NULL,
    error_message/error_stack_trace='' (kept while attempts > 0) WHERE id=:job AND
    worker_id=:me AND state='processing'`. No attempt is counted: the job did not fail.
    Locking: the UPDATE's row lock; SQLite's write lock.
    """
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
    policy: RetryRule,
    rand: Callable[[], float] = random.random,
) -> FailureRecord:
    """A failed attempt: processing → ready after a backoff (transient, attempts left), else
    processing → error; attempts + 1 and the error kept as the last error either way.

    SQL: `SELECT attempts FROM jobs WHERE id=:job AND worker_id=:me AND state='processing' FOR
    UPDATE`, then `UPDATE jobs SET worker_id=NULL, attempts=:n, error_message, error_stack_trace,
    state='ready', next_attempt_at=now + backoff, started_at=NULL, finished_at=NULL` (retry) or
    `state='error', finished_at=now`. Locking: the row lock taken by FOR UPDATE (PostgreSQL);
    SQLite's write lock. The backoff counts from the database's clock, as the claim compares it.
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
    failed_before: int, transient: bool, policy: RetryRule, rand: Callable[[], float]
) -> FailureRecord:
    """RETRY with its delay when the failure is transient and attempts remain, else ERROR."""
    failed = failed_before + 1
    if transient and not policy.gives_up(failed):
        return FailureRecord(Failure.RETRY, failed, policy.delay(failed_before, rand))
    return FailureRecord(Failure.ERROR, failed)


def _completed_values() -> dict[str, Any]:
    # A function, not a constant: finished_at is the time of the write.
    return dict(
        state=JobState.COMPLETE,
        worker_id=None,
        error_message="",
        error_stack_trace="",
        finished_at=utcnow(),
    )


def _update_owned(
    db: Database,
    job_id: int,
    owner: str,
    values: dict[str, Any],
    then: CompletionHook | None = None,
) -> bool:
    return db.run_write(lambda session: _write_owned(session, job_id, owner, values, then))


def _write_owned(
    session: Session,
    job_id: int,
    owner: str,
    values: dict[str, Any],
    then: CompletionHook | None = None,
) -> bool:
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
