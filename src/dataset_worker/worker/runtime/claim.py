"""Claiming the next job (docs/architecture.md#claiming-jobs), safely with any number of workers.

PostgreSQL: the candidate row is locked with FOR UPDATE SKIP LOCKED and updated in the same
transaction, so concurrent claimers each get a different row without waiting. SQLite: the
transaction starts with BEGIN IMMEDIATE (one writer at a time) and `run_write` retries it on lock
errors; SQLAlchemy drops the FOR UPDATE clause there.

Spec query: `type = ? AND attachment_id IS NOT NULL AND (state = 'ready' OR (state = 'processing'
AND worker_id IS NULL)) ORDER BY id LIMIT 1`. It is run as two index-friendly halves (each an
ordered scan of ix_jobs_type_state_id) and the lower id wins, which selects the same row; one OR
query would make PostgreSQL sort every ready job of the type for each claim.

A ready job waiting out a retry backoff (`next_attempt_at` in the future) is skipped. That is a
filter on the rows the ordered index scan visits, not a second sort key: only jobs waiting for a
retry are stepped over, and they are few (a transient failure), so the scan still stops early.
The time is the database's (see registry.now_expr), the clock `next_attempt_at` was set with.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.clock import database_now, now_expr
from dataset_worker.db.models import Job, JobState, JobType, utcnow


@dataclass(frozen=True)
class ClaimedJob:
    """A job now owned by one worker thread."""

    id: int
    type: JobType
    attachment_id: int


def claim_next_job(
    db: Database, worker_id: str, types: Sequence[JobType], hostname: str | None = None
) -> ClaimedJob | None:
    """Claim the first claimable job of the first type (in `types` order) that has one.

    The job becomes `processing`, owned by `worker_id`, with started_at now and finished_at NULL;
    last_worker_id/last_worker_host (default: this host) record who has it, and keep it after
    the run, a crash included. The error message is cleared, unless the job is being retried
    (its last error stays visible). Returns None when no enabled type has a claimable job.
    """
    host = hostname if hostname is not None else socket.gethostname()
    now = now_expr(db)
    return db.run_write(lambda session: _claim(session, worker_id, host, types, now))


def _claim(
    session: Session,
    worker_id: str,
    hostname: str,
    types: Sequence[JobType],
    now: ColumnElement[datetime],
) -> ClaimedJob | None:
    for job_type in types:
        job = _lock_candidate(session, job_type, now)
        if job is None:
            continue
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(
                state=JobState.PROCESSING,
                worker_id=worker_id,
                error_message=case((Job.attempts > 0, Job.error_message), else_=""),
                started_at=utcnow(),
                finished_at=None,
                last_worker_id=worker_id,
                last_worker_host=hostname[:255],
            )
        )
        return job
    return None


def _lock_candidate(
    session: Session, job_type: JobType, now: ColumnElement[datetime]
) -> ClaimedJob | None:
    due = or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now)
    ready = _first(session, job_type, Job.state == JobState.READY, due)
    # A job left `processing` without an owner (its worker row was deleted) is claimable too;
    # only one with a lower id than the first ready one can win.
    orphaned = [Job.state == JobState.PROCESSING, Job.worker_id.is_(None)]
    if ready is not None:
        orphaned.append(Job.id < ready.id)
    resumed = _first(session, job_type, *orphaned)
    return resumed or ready


def _first(
    session: Session, job_type: JobType, *conditions: ColumnElement[bool]
) -> ClaimedJob | None:
    row = session.execute(
        select(Job.id, Job.attachment_id)
        .where(Job.type == job_type, Job.attachment_id.is_not(None), *conditions)
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None or row.attachment_id is None:
        return None
    return ClaimedJob(id=row.id, type=job_type, attachment_id=row.attachment_id)


def seconds_until_retry(db: Database, types: Sequence[JobType]) -> float | None:
    """Seconds until the earliest ready job of `types` that waits out a retry backoff falls due
    (0 when one is due already); None when no job waits for a retry."""
    with db.read() as session:
        due = session.scalar(
            select(func.min(Job.next_attempt_at)).where(
                Job.type.in_(list(types)),
                Job.state == JobState.READY,
                Job.attachment_id.is_not(None),
                Job.next_attempt_at.is_not(None),
            )
        )
        now = database_now(db, session)
    if due is None:
        return None
    return max(0.0, (_aware(due) - _aware(now)).total_seconds())


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
