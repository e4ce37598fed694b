"""ready (or ownerless processing) → processing: claiming the next job, and what a claimer waits for.

See docs/architecture.md#claiming-jobs. The claim runs in one write transaction. Spec query:
`type = ? AND attachment_id IS NOT NULL AND (state = 'ready' OR (state = 'processing' AND
worker_id IS NULL)) ORDER BY id LIMIT 1`, run as two index-friendly halves (each an ordered scan
of ix_jobs_type_state_id) of which the lower id wins: the same row, without making PostgreSQL
sort every ready job of the type for each claim. A ready job waiting out a retry backoff
(`next_attempt_at` in the future) is skipped; that is a filter on the rows the index scan
visits, not a sort key. "Now" is the database's clock (db/clock.py), the one `next_attempt_at`
was set with.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session

from dataset_worker.db.clock import database_now, now_expr
from dataset_worker.db.engine import Database
from dataset_worker.db.models import Job, JobState, JobType, utcnow


@dataclass(frozen=True)
class ClaimedJob:
    """A job now owned by one worker thread."""

    id: int
    type: JobType
    attachment_id: int


def claim_next_job(
    db: Database,
    worker_id: str,
    types: Sequence[JobType],
    hostname: str | None = None,
    attachments: Sequence[int] = (),
) -> ClaimedJob | None:
    """ready (due) or ownerless processing → processing, for the first type in `types` order
    that has one; None when no enabled type has a claimable job.

    SQL: per type, `SELECT id … WHERE state='ready' AND due … ORDER BY id LIMIT 1 FOR UPDATE SKIP
    LOCKED`, the same for an ownerless `processing` job of lower id, then `UPDATE jobs SET
    state='processing', worker_id=:me, last_worker_id=:me, last_worker_host=:host,
    started_at=now, finished_at=NULL, error_message='' (kept while attempts > 0)`.
    Locking: PostgreSQL skips rows another claimer holds (SKIP LOCKED), so concurrent claimers
    each get a different row without waiting; SQLite takes the single write lock up front (BEGIN
    IMMEDIATE, `run_write`) and SQLAlchemy drops the FOR UPDATE clause; it first looks in a read
    transaction and takes that lock only when there is a job to claim. `attachments`, when not
    empty, limits the claim to those source attachments (`run --prep`, `prepare`).
    """
    host = hostname if hostname is not None else socket.gethostname()
    now = now_expr(db)
    scope = _scope(attachments)
    if db.engine.dialect.name == "sqlite" and not _any_candidate(db, types, now, scope):
        # Nothing to claim: look without SQLite's one write lock. Idle and waiting threads poll
        # often and are all woken at each job's end; taking the lock for every look starves the
        # writers that matter (a pack's recording, the heartbeats) past the reaper's deadline.
        return None
    return db.run_write(lambda session: _claim(session, worker_id, host, types, now, scope))


def claim_in(
    session: Session,
    db: Database,
    worker_id: str,
    types: Sequence[JobType],
    hostname: str,
    attachments: Sequence[int] = (),
) -> ClaimedJob | None:
    """`claim_next_job`'s claim in the caller's write transaction (db/queue/handover.py)."""
    return _claim(session, worker_id, hostname, types, now_expr(db), _scope(attachments))


def _any_candidate(
    db: Database,
    types: Sequence[JobType],
    now: ColumnElement[datetime],
    scope: list[ColumnElement[bool]],
) -> bool:
    """Whether a claim would find a job now (a read: the claim itself looks again, locked)."""
    with db.read() as session:
        return any(_lock_candidate(session, job_type, now, scope) for job_type in types)


def _scope(attachments: Sequence[int]) -> list[ColumnElement[bool]]:
    return [Job.attachment_id.in_(list(attachments))] if attachments else []


def _claim(
    session: Session,
    worker_id: str,
    hostname: str,
    types: Sequence[JobType],
    now: ColumnElement[datetime],
    scope: list[ColumnElement[bool]],
) -> ClaimedJob | None:
    for job_type in types:
        job = _lock_candidate(session, job_type, now, scope)
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
    session: Session,
    job_type: JobType,
    now: ColumnElement[datetime],
    scope: list[ColumnElement[bool]],
) -> ClaimedJob | None:
    due = or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now)
    ready = _first(session, job_type, Job.state == JobState.READY, due, *scope)
    # A job left `processing` without an owner (its worker row was deleted) is claimable too;
    # only one with a lower id than the first ready one can win.
    orphaned = [Job.state == JobState.PROCESSING, Job.worker_id.is_(None), *scope]
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


def seconds_until_retry(
    db: Database, types: Sequence[JobType], attachments: Sequence[int] = ()
) -> float | None:
    """Seconds until the earliest ready job of `types` that waits out a retry backoff falls due
    (0 when one is due already); None when no job waits for a retry. A read, no lock."""
    with db.read() as session:
        due = session.scalar(
            select(func.min(Job.next_attempt_at)).where(
                Job.type.in_(list(types)),
                Job.state == JobState.READY,
                Job.attachment_id.is_not(None),
                Job.next_attempt_at.is_not(None),
                *_scope(attachments),
            )
        )
        now = database_now(db, session)
    if due is None:
        return None
    return max(0.0, (_aware(due) - _aware(now)).total_seconds())


# The jobs a running job of each type may queue: a scan queues pack jobs, and the last pack job
# queues daggen (worker/jobs/chain.py). A worker that runs only the later type waits for them.
UPSTREAM: dict[JobType, tuple[JobType, ...]] = {
    JobType.PACK: (JobType.SCAN,),
    JobType.DAGGEN: (JobType.SCAN, JobType.PACK),
}


def upstream_types(types: Sequence[JobType]) -> list[JobType]:
    """The job types whose running jobs may queue more jobs of `types` (not in `types`)."""
    found = {up for job_type in types for up in UPSTREAM.get(job_type, ())}
    return sorted(found - set(types), key=list(JobType).index)


def work_left(
    db: Database, types: Sequence[JobType], worker_id: str, attachments: Sequence[int] = ()
) -> bool:
    """Whether a job of `types` is still to be done by someone: `ready` (one may have turned
    ready since the last claim, or another claimer holds it) or `processing` under another
    owner (its worker may die: a reaper then makes it ready; a scan may create more jobs); or a
    job of an upstream type is `processing` (a pack-only worker waits for the running scan's
    pack jobs, a daggen-only one for the last pack job's daggen). What an exit-on-complete
    thread waits for. A read, no lock."""
    others = or_(Job.worker_id.is_(None), Job.worker_id != worker_id)
    wanted = and_(
        Job.type.in_(list(types)),
        or_(Job.state == JobState.READY, and_(Job.state == JobState.PROCESSING, others)),
    )
    upstream = upstream_types(types)
    if upstream:
        wanted = or_(wanted, and_(Job.type.in_(upstream), Job.state == JobState.PROCESSING))
    with db.read() as session:
        return bool(
            session.scalar(
                select(exists().where(wanted, Job.attachment_id.is_not(None), *_scope(attachments)))
            )
        )


def failed_since(
    db: Database, types: Sequence[JobType], since: datetime, attachments: Sequence[int] = ()
) -> int:
    """How many jobs of `types` went to `error` at or after `since` (their finished_at). A read."""
    with db.read() as session:
        count = session.scalar(
            select(func.count()).where(
                Job.type.in_(list(types)),
                Job.state == JobState.ERROR,
                Job.finished_at >= since,
                *_scope(attachments),
            )
        )
    return int(count or 0)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
