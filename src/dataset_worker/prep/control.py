"""Starting and pausing jobs: the state transitions users may ask for (docs/architecture.md#job-states-and-transitions).

- start-scan / start-daggen: at most one job of each kind per source attachment. The first start
  creates it `ready`; later starts move it back to `ready` from created, paused, error **or
  complete** (a rescan is incremental). A complete daggen is restarted only with `force`: its
  DAG piece exists, and building it again only adds another one (a Conflict without force).
- start-pack: paused or error → ready, but never complete (the piece already exists), nor
  created (a pack job its scan is still filling: it turns ready once full).
- pause (any kind): ready or processing → paused. A processing job keeps its worker_id; the
  worker notices the pause and stops working on it.
A start of a job that is already ready (queued) or processing is a Conflict naming its state;
any other request is refused with InvalidParameter naming the job and its state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from dataset_worker.db import Database, queue
from dataset_worker.db.directories import dag_behind
from dataset_worker.db.models import (
    Job,
    JobState,
    JobType,
    Preparation,
    SourceAttachment,
)
from dataset_worker.logs import log_event
from dataset_worker.prep.errors import Conflict, InvalidParameter, NotFound
from dataset_worker.prep.lookup import MAX_ID, find_preparation, single_source
from dataset_worker.prep.views import JobView

logger = logging.getLogger(__name__)

RUNNING = queue.PAUSE_FROM
RESTARTABLE = queue.START_FROM
PACK_STARTABLE = queue.PACK_START_FROM


def start_scan(db: Database, prep: str | int) -> JobView:
    """Create or restart the scan job of `prep` (created/paused/error/complete → ready)."""
    return _change_single(db, prep, JobType.SCAN, _start)


def pause_scan(db: Database, prep: str | int) -> JobView:
    """Pause the scan job of `prep` (ready/processing → paused)."""
    return _change_single(db, prep, JobType.SCAN, _pause)


def start_daggen(db: Database, prep: str | int, *, force: bool = False) -> JobView:
    """Create or restart the daggen job of `prep`; refused when the preparation has noDag, and
    when its daggen is complete unless `force` (a Conflict naming the job)."""
    return _change_single(db, prep, JobType.DAGGEN, _start_forced if force else _start)


def pause_daggen(db: Database, prep: str | int) -> JobView:
    """Pause the daggen job of `prep` (ready/processing → paused)."""
    return _change_single(db, prep, JobType.DAGGEN, _pause)


def start_pack(db: Database, prep: str | int, job_id: int | None = None) -> list[JobView]:
    """Move pack job `job_id` (or, when None or 0, every eligible pack job of `prep`) from
    paused/error to ready. A single job in another state is refused; the bulk form
    skips jobs that are not eligible and returns the ones it changed, lowest id first."""
    return _change_pack(db, prep, job_id, start=True)


def pause_pack(db: Database, prep: str | int, job_id: int | None = None) -> list[JobView]:
    """Pause pack job `job_id` (or, when None or 0, every ready/processing pack job of `prep`)."""
    return _change_pack(db, prep, job_id, start=False)


Transition = Callable[[Session, Preparation, Job | None, SourceAttachment, JobType], JobView]


def _change_single(
    db: Database, prep_key: str | int, job_type: JobType, change: Transition
) -> JobView:
    def run(session: Session) -> JobView:
        prep = find_preparation(session, prep_key)
        attachment = single_source(prep)
        # Lock the attachment so two concurrent first starts cannot both insert a job row
        # (PostgreSQL; SQLite's write transaction already excludes other writers).
        session.execute(
            select(SourceAttachment.id)
            .where(SourceAttachment.id == attachment.id)
            .with_for_update()
        )
        job = session.scalars(
            select(Job)
            .where(Job.type == job_type, Job.attachment_id == attachment.id)
            .order_by(Job.id)
            .limit(1)
            .with_for_update()
        ).first()
        return change(session, prep, job, attachment, job_type)

    view = db.run_write(run)
    log_event(logger, "job.state_changed", job=view.id, type=view.type, state=view.state)
    return view


def _start(
    session: Session,
    prep: Preparation,
    job: Job | None,
    attachment: SourceAttachment,
    job_type: JobType,
) -> JobView:
    if (
        job_type is JobType.DAGGEN
        and job is not None
        and job.state is JobState.COMPLETE
        and not dag_behind(session, attachment.id)
    ):
        raise Conflict(
            f'daggen job {job.id} of preparation "{prep.name}" is already done (state '
            "complete): its DAG piece holds every folder; force it (--force, or ?force=true over "
            "HTTP) to build the DAG again"
        )
    return _start_forced(session, prep, job, attachment, job_type)


def _start_forced(
    session: Session,
    prep: Preparation,
    job: Job | None,
    attachment: SourceAttachment,
    job_type: JobType,
) -> JobView:
    if job_type is JobType.DAGGEN and prep.no_dag:
        raise InvalidParameter(
            f'dag generation is disabled for preparation "{prep.name}" (it was created with noDag)'
        )
    if job is None:
        return _view(session, Job.id == queue.insert_ready(session, job_type, attachment.id))
    if job.state not in RESTARTABLE:
        # A conflict with the job's current state, not a bad request: say which state it is in.
        what = "queued" if job.state is JobState.READY else "running"
        raise Conflict(
            f'{job_type} job {job.id} of preparation "{prep.name}" is already {what} '
            f"(state {job.state})"
        )
    return _one(queue.make_ready(session, Job.id == job.id, from_states=RESTARTABLE))


def _pause(
    session: Session,
    prep: Preparation,
    job: Job | None,
    attachment: SourceAttachment,
    job_type: JobType,
) -> JobView:
    if job is None:
        raise NotFound(
            f'preparation "{prep.name}" has no {job_type} job yet (start one with start-{job_type})'
        )
    if job.state not in RUNNING:
        raise InvalidParameter(
            f'{job_type} job {job.id} of preparation "{prep.name}" is not running (state {job.state})'
        )
    return _one(queue.pause(session, Job.id == job.id, from_states=RUNNING))


def _view(session: Session, where: ColumnElement[bool]) -> JobView:
    row = session.execute(select(*queue.JOB_COLUMNS).where(where)).one()
    return JobView.model_validate(row._asdict())


def _one(rows: Sequence[dict[str, Any]]) -> JobView:
    """The one row a transition of a locked job changed."""
    (row,) = rows
    return JobView.model_validate(row)


def _change_pack(
    db: Database, prep_key: str | int, job_id: int | None, *, start: bool
) -> list[JobView]:
    if job_id is not None and job_id < 0:
        raise InvalidParameter(f"job id must be a positive number, got {job_id}")
    allowed = PACK_STARTABLE if start else RUNNING

    def run(session: Session) -> list[JobView]:
        prep = find_preparation(session, prep_key)
        attachment = single_source(prep)
        if job_id:
            return [_change_one_pack(session, prep, attachment, job_id, allowed, start)]
        # Bulk: jobs a worker is claiming right now are locked; skip them as Singularity does.
        move = queue.make_ready if start else queue.pause
        rows = move(
            session,
            Job.type == JobType.PACK,
            Job.attachment_id == attachment.id,
            from_states=allowed,
            skip_locked=True,
        )
        return sorted((JobView.model_validate(row) for row in rows), key=lambda j: j.id)

    views = db.run_write(run)
    for view in views:
        log_event(logger, "job.state_changed", job=view.id, type=view.type, state=view.state)
    return views


def _change_one_pack(
    session: Session,
    prep: Preparation,
    attachment: SourceAttachment,
    job_id: int,
    allowed: Collection[JobState],
    start: bool,
) -> JobView:
    job = None
    if job_id <= MAX_ID:
        job = session.scalars(
            select(Job)
            .where(Job.id == job_id, Job.type == JobType.PACK, Job.attachment_id == attachment.id)
            .with_for_update()
        ).one_or_none()
    if job is None:
        raise NotFound(f'pack job {job_id} of preparation "{prep.name}" not found')
    if job.state not in allowed:
        rule = "is running or complete" if start else "is not running"
        if start and job.state is JobState.CREATED:
            rule = "is still being filled by its scan"
        raise InvalidParameter(
            f'pack job {job.id} of preparation "{prep.name}" {rule} (state {job.state})'
        )
    move = queue.make_ready if start else queue.pause
    return _one(move(session, Job.id == job.id, from_states=allowed))
