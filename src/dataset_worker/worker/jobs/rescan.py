"""`--auto-rescan`: a pack that fails on a changed or vanished source file queues the scan.

The scan re-plans the work around the current files (worker/jobs/scan/stale.py): it rebuilds
the failed pack job, so the failure is not a dead end. Once per failure: each failed pack asks
once (`queue_rescan`); a paused scan waits for the user. A scan that is running when the pack
fails may have listed the file before it changed, so its completion looks for such failures
(`rescan_if_failed_meanwhile`, in the completing transaction) and queues itself once more.
"""

from __future__ import annotations

import logging

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from dataset_worker.db.models import Job, JobState, JobType, Preparation, SourceAttachment
from dataset_worker.db.queue import make_ready
from dataset_worker.logs import log_event
from dataset_worker.storage import RESCAN_HINT
from dataset_worker.worker.runtime.context import JobContext

log = logging.getLogger("dataset_worker.worker")

RESCAN_FROM = (JobState.COMPLETE, JobState.ERROR)


def rescan_if_failed_meanwhile(session: Session, scan_job_id: int) -> bool:
    """Completion hook part for scans: with auto-rescan on, queue this scan again when a pack
    job of its attachment failed on a changed source file since the scan started. True if
    queued (the daggen is then not due yet)."""
    scan = session.execute(
        select(Job.attachment_id, Job.started_at, Preparation.auto_rescan)
        .join(SourceAttachment, SourceAttachment.id == Job.attachment_id)
        .join(Preparation, Preparation.id == SourceAttachment.preparation_id)
        .where(Job.id == scan_job_id)
    ).one_or_none()
    if scan is None or not scan.auto_rescan or scan.started_at is None:
        return False
    failed = session.scalar(
        select(
            exists().where(
                Job.type == JobType.PACK,
                Job.attachment_id == scan.attachment_id,
                Job.state == JobState.ERROR,
                Job.finished_at >= scan.started_at,
                Job.error_message.contains(RESCAN_HINT),  # what every source change says
            )
        )
    )
    if not failed:
        return False
    rows = make_ready(session, Job.id == scan_job_id, from_states=(JobState.COMPLETE,))
    log_event(
        log,
        "scan.auto_rescan",
        job=scan_job_id,
        reason="a pack failed on a changed file while it ran",
    )
    return bool(rows)


def queue_rescan(ctx: JobContext, reason: str) -> bool:
    """Queue the scan of the job's attachment again (complete or error → ready); True if it
    was queued. Never raises: the pack's own failure is what gets recorded."""

    def work(session: Session) -> bool:
        rows = make_ready(
            session,
            Job.type == JobType.SCAN,
            Job.attachment_id == ctx.attachment_id,
            from_states=RESCAN_FROM,
        )
        return bool(rows)

    try:
        queued = ctx.db.run_write(work)
    except Exception as exc:
        log_event(
            ctx.logger, "pack.auto_rescan_failed", logging.WARNING, job=ctx.job_id, error=str(exc)
        )
        return False
    log_event(
        ctx.logger,
        "pack.auto_rescan",
        logging.WARNING,
        job=ctx.job_id,
        queued=queued,
        reason=reason,
    )
    return queued
