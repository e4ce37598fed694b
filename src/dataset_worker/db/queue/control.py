"""Queueing and pausing: the transitions a user or the pipeline asks for.

See docs/architecture.md#job-states-and-transitions. `insert_ready` creates a job `ready`, and
`insert_created` one `created` (a pack job a scan is still filling, made ready by `make_ready`
with FILLED_FROM once full); `make_ready` moves existing jobs back to `ready` with a fresh start (error, times, attempts and
backoff cleared); `pause` moves jobs to `paused` (a processing one keeps its worker_id: the
worker's pause monitor notices and stops it). The caller chooses the rows and runs the write
transaction; the allowed source states are stated here, per request.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.orm import Session

from dataset_worker.db.models import Job, JobState, JobType

# scan / daggen starts: a rescan is incremental, a new daggen exports what changed.
START_FROM = (JobState.CREATED, JobState.PAUSED, JobState.ERROR, JobState.COMPLETE)
# pack starts: never a complete one (its piece exists), nor one a scan is still filling.
PACK_START_FROM = (JobState.PAUSED, JobState.ERROR)
# A scan's pack job, once it is full.
FILLED_FROM = (JobState.CREATED,)
RETRY_FROM = (JobState.ERROR,)
PAUSE_FROM = (JobState.READY, JobState.PROCESSING)
# The auto chain queues a daggen again only after it completed.
REQUEUE_FROM = (JobState.COMPLETE,)

# What a caller gets back about each row it changed (prep/views.py JobView's fields).
JOB_COLUMNS = (Job.id, Job.type, Job.state, Job.error_message, Job.worker_id, Job.attachment_id)

# A job moved to `ready` by a request forgets its previous run: error, times, failed attempts.
FRESH_START: dict[str, Any] = {
    "state": JobState.READY,
    "error_message": "",
    "error_stack_trace": "",
    "started_at": None,
    "finished_at": None,
    "attempts": 0,
    "next_attempt_at": None,
}


def insert_ready(session: Session, job_type: JobType, attachment_id: int) -> int:
    """(none) → ready: a new job of `job_type` for the attachment; returns its id.

    SQL: `INSERT INTO jobs (type, state, attachment_id, …) VALUES (:type, 'ready', :a, …)
    RETURNING id`, in the caller's write transaction. Locking: callers that must not insert a
    second scan or daggen for one attachment lock the attachment row first (FOR UPDATE on
    PostgreSQL; SQLite's write lock).
    """
    return _insert(session, job_type, attachment_id, JobState.READY)


def _insert(session: Session, job_type: JobType, attachment_id: int, state: JobState) -> int:
    return int(
        session.execute(
            insert(Job)
            .values(type=job_type, attachment_id=attachment_id, **{**FRESH_START, "state": state})
            .returning(Job.id)
        ).scalar_one()
    )


def insert_created(session: Session, job_type: JobType, attachment_id: int) -> int:
    """(none) → created: a new job of `job_type` that must not be claimed yet; returns its id.

    The scan's pack job being filled: its ranges go in with its id as they are listed, and it
    turns ready (`make_ready`, FILLED_FROM) once full. SQL: `INSERT INTO jobs (type, state,
    attachment_id, …) VALUES (:type, 'created', :a, …) RETURNING id`, in the caller's write
    transaction. Locking: none beyond the insert (a scan is the only writer of its attachment's
    ranges).
    """
    return _insert(session, job_type, attachment_id, JobState.CREATED)


def make_ready(
    session: Session,
    *where: ColumnElement[bool],
    from_states: Collection[JobState],
    skip_locked: bool = False,
) -> list[dict[str, Any]]:
    """from_states → ready, fresh: attempts 0, no backoff, error and times cleared. Returns
    the changed rows (JOB_COLUMNS, as dicts), in no particular order.

    SQL: `UPDATE jobs SET state='ready', attempts=0, next_attempt_at=NULL, error_message='',
    error_stack_trace='', started_at=NULL, finished_at=NULL WHERE id IN (SELECT id FROM jobs
    WHERE <where> AND state IN (:from_states) FOR UPDATE [SKIP LOCKED]) RETURNING …`, in the
    caller's write transaction. Locking: the rows are locked (PostgreSQL); with `skip_locked`,
    rows another transaction holds (a worker claiming them) are left out, not waited for;
    SQLite's write lock serialises the rest.
    """
    return _move(session, where, from_states, FRESH_START, skip_locked)


def pause(
    session: Session,
    *where: ColumnElement[bool],
    from_states: Collection[JobState] = PAUSE_FROM,
    skip_locked: bool = False,
) -> list[dict[str, Any]]:
    """ready, processing → paused; worker_id is kept, so the owner's pause monitor stops the
    job and its outcome write (guarded by state='processing') then changes nothing. Returns the
    changed rows (JOB_COLUMNS).

    SQL: `UPDATE jobs SET state='paused' WHERE id IN (SELECT id FROM jobs WHERE <where> AND
    state IN (:from_states) FOR UPDATE [SKIP LOCKED]) RETURNING …`. Locking: as `make_ready`.
    """
    return _move(session, where, from_states, {"state": JobState.PAUSED}, skip_locked)


def _move(
    session: Session,
    where: Sequence[ColumnElement[bool]],
    from_states: Collection[JobState],
    values: dict[str, Any],
    skip_locked: bool,
) -> list[dict[str, Any]]:
    chosen = (
        select(Job.id)
        .where(*where, Job.state.in_(list(from_states)))
        .with_for_update(skip_locked=skip_locked)
    )
    result = session.execute(
        update(Job)
        .where(Job.id.in_(chosen.scalar_subquery()))
        .values(**values)
        .returning(*JOB_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    return [row._asdict() for row in result]


def insert_ready_many(
    session: Session, job_type: JobType, attachment_id: int, count: int
) -> list[int]:
    """(none) → ready, `count` times: new jobs of `job_type` for the attachment; their ids in
    ascending order (the order they will be claimed in).

    SQL: one multi-row `INSERT INTO jobs (…) VALUES (…), (…) … RETURNING id` per page of rows,
    in the caller's write transaction. Used by the scan, which may plan thousands of pack jobs
    in one batch: one statement each would cost more than the inserts themselves.
    """
    if count <= 0:
        return []
    row = {"type": job_type, "attachment_id": attachment_id, **FRESH_START}
    result = session.execute(
        insert(Job).returning(Job.id, sort_by_parameter_order=True), [dict(row)] * count
    )
    return [int(job_id) for job_id in result.scalars()]
