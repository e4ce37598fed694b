"""Claiming the next job (reference spec §3.3), safely with any number of workers.

PostgreSQL: the candidate row is locked with FOR UPDATE SKIP LOCKED and updated in the same
transaction, so concurrent claimers each get a different row without waiting. SQLite: the
transaction starts with BEGIN IMMEDIATE (one writer at a time) and `run_write` retries it on lock
errors; SQLAlchemy drops the FOR UPDATE clause there.

Spec query: `type = ? AND attachment_id IS NOT NULL AND (state = 'ready' OR (state = 'processing'
AND worker_id IS NULL)) ORDER BY id LIMIT 1`. It is run as two index-friendly halves (each an
ordered scan of ix_jobs_type_state_id) and the lower id wins, which selects the same row; one OR
query would make PostgreSQL sort every ready job of the type for each claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType, utcnow


@dataclass(frozen=True)
class ClaimedJob:
    """A job now owned by one worker thread."""

    id: int
    type: JobType
    attachment_id: int


def claim_next_job(db: Database, worker_id: str, types: Sequence[JobType]) -> ClaimedJob | None:
    """Claim the first claimable job of the first type (in `types` order) that has one.

    The job becomes `processing`, owned by `worker_id`, with error_message cleared, started_at now
    and finished_at NULL. Returns None when no enabled type has a claimable job.
    """
    return db.run_write(lambda session: _claim(session, worker_id, types))


def _claim(session: Session, worker_id: str, types: Sequence[JobType]) -> ClaimedJob | None:
    for job_type in types:
        job = _lock_candidate(session, job_type)
        if job is None:
            continue
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(
                state=JobState.PROCESSING,
                worker_id=worker_id,
                error_message="",
                started_at=utcnow(),
                finished_at=None,
            )
        )
        return job
    return None


def _lock_candidate(session: Session, job_type: JobType) -> ClaimedJob | None:
    ready = _first(session, job_type, Job.state == JobState.READY)
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
