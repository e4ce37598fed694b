"""`--auto-rescan`: a pack that fails on a changed or vanished source file queues the scan.

The scan re-plans the work around the current files (worker/jobs/scan/stale.py): it rebuilds
the failed pack job, so the failure is not a dead end. Once per failure: each failed pack asks
once; a scan already queued or running is left as it is, and a paused one waits for the user.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from dataset_worker.db.models import Job, JobState, JobType
from dataset_worker.db.queue import make_ready
from dataset_worker.logs import log_event
from dataset_worker.worker.runtime.context import JobContext

RESCAN_FROM = (JobState.COMPLETE, JobState.ERROR)


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
