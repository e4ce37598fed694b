"""The auto chain: a preparation's daggen job is queued by itself once its packing is done.

The rule, per source attachment of a preparation with auto_chain on and no_dag off: when the
scan is complete and every pack job is complete (at least one), the attachment's daggen job is
made `ready` — inserted when there is none, or an existing *complete* one re-queued when some
directory changed since it ran (unexported directories with a CID). A daggen job in any other
state is left alone: ready or processing ones will see the new directories (a processing one is
re-queued by its own completion if it missed some), and paused or errored ones wait for the user
(`prep retry`). Any pack job that is not complete — created, ready, processing, paused or in
error — means packing is not done yet: an errored one blocks the chain until a retry completes
it, and that completion runs the rule again.

Why it is exact, with no daggen lost and none duplicated: the runtime calls these hooks inside
the transaction that marks a scan, pack or daggen job complete (db/queue complete_job), after the
ownership-checked update succeeded. The completion and the decision commit together or not at
all, so a completion can never be recorded without its decision (a crash in between rolls back
both; the job is then run again and decides again). The first thing each hook does is lock the
attachment row (SELECT … FOR NO KEY UPDATE on PostgreSQL; on SQLite the transaction already holds the
one write lock from BEGIN IMMEDIATE), so two completions of one attachment decide one after the
other: the later one, at READ COMMITTED, sees the earlier one's committed completion (and its
daggen row), never an in-between state. When the last two pack jobs complete at once, exactly
one of them sees the other complete and queues the daggen; the existing row is re-used rather
than a second one inserted. Manual start-daggen locks the attachment first too.
"""

from __future__ import annotations

import logging

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from dataset_worker.db import queue
from dataset_worker.db.directories import dag_behind
from dataset_worker.db.models import (
    Job,
    JobState,
    JobType,
    Preparation,
    SourceAttachment,
)
from dataset_worker.logs import log_event
from dataset_worker.worker.jobs.rescan import rescan_if_failed_meanwhile

log = logging.getLogger("dataset_worker.worker")


def after_scan_complete(session: Session, job_id: int) -> None:
    """Completion hook of scan jobs: packing may already be done (or have nothing to wait for).
    With auto-rescan, a pack that failed on a changed file meanwhile queues the scan again."""
    if rescan_if_failed_meanwhile(session, job_id):
        return
    _after(session, job_id)


def after_pack_complete(session: Session, job_id: int) -> None:
    """Completion hook of pack jobs: this may have been the last one."""
    _after(session, job_id)


def after_daggen_complete(session: Session, job_id: int) -> None:
    """Completion hook of daggen jobs: run again if directories changed while it ran."""
    _after(session, job_id)


def _after(session: Session, job_id: int) -> None:
    attachment_id = session.scalar(select(Job.attachment_id).where(Job.id == job_id))
    if attachment_id is not None:
        queue_daggen_if_due(session, attachment_id)


def queue_daggen_if_due(session: Session, attachment_id: int) -> int | None:
    """Apply the rule for one attachment (in the caller's write transaction).

    Returns the id of the daggen job made ready, or None when nothing was due.
    """
    settings = session.execute(
        select(Preparation.auto_chain, Preparation.no_dag)
        .select_from(SourceAttachment)
        .join(Preparation, Preparation.id == SourceAttachment.preparation_id)
        .where(SourceAttachment.id == attachment_id)
        # FOR NO KEY UPDATE: it excludes the other completions' lock all the same, but not the
        # KEY SHARE lock that inserting a `cars` row (its attachment_id foreign key) takes. A
        # pack job completes inside its recording transaction (db/queue/handover.py): with FOR
        # UPDATE, one recording waiting here for another's cars insert while that one waited
        # for the first's directory rows was a deadlock.
        .with_for_update(of=SourceAttachment, key_share=True)
    ).one_or_none()
    if settings is None or not settings.auto_chain or settings.no_dag:
        return None
    if not _scan_complete(session, attachment_id) or not _packing_done(session, attachment_id):
        return None
    daggen = session.execute(
        select(Job.id, Job.state)
        .where(Job.type == JobType.DAGGEN, Job.attachment_id == attachment_id)
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).one_or_none()
    if daggen is None and _has_daggen(session, attachment_id):
        # Its row is locked, so another transaction is changing it: its claim, its recording or
        # its end (whose completion runs this rule again, after this one), or a user's start or
        # pause. None needs this decision. Waiting instead could deadlock: a pack job's
        # recording (db/queue/handover.py) holds directory rows that a daggen's recording,
        # holding its own row, waits for.
        return None
    if daggen is None:
        job_id = queue.insert_ready(session, JobType.DAGGEN, attachment_id)
    elif daggen.state == JobState.COMPLETE and dag_behind(session, attachment_id):
        # Moving a job to `ready` starts it afresh, as prep start-daggen does.
        job_id = daggen.id
        queue.make_ready(session, Job.id == job_id, from_states=queue.REQUEUE_FROM)
    else:
        return None
    log_event(log, "chain.daggen_queued", job=job_id, attachment=attachment_id)
    return job_id


def _has_daggen(session: Session, attachment_id: int) -> bool:
    return bool(
        session.scalar(
            select(exists().where(Job.type == JobType.DAGGEN, Job.attachment_id == attachment_id))
        )
    )


def _scan_complete(session: Session, attachment_id: int) -> bool:
    states = set(
        session.scalars(
            select(Job.state).where(Job.type == JobType.SCAN, Job.attachment_id == attachment_id)
        )
    )
    return states == {JobState.COMPLETE}


def _packing_done(session: Session, attachment_id: int) -> bool:
    """At least one pack job, and every one complete."""
    of_attachment = (Job.type == JobType.PACK, Job.attachment_id == attachment_id)
    pending = session.scalar(select(exists().where(*of_attachment, Job.state != JobState.COMPLETE)))
    if pending:
        return False
    return bool(session.scalar(select(exists().where(*of_attachment))))
