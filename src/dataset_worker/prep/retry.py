"""`prep retry`: make a preparation's failed jobs ready again, with a fresh attempts budget."""

from __future__ import annotations

import logging

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from dataset_worker.db import Database, queue
from dataset_worker.db.models import Job, JobType
from dataset_worker.logs import log_event
from dataset_worker.prep.errors import InvalidParameter
from dataset_worker.prep.lookup import find_preparation
from dataset_worker.prep.views import JobView

logger = logging.getLogger(__name__)

JOB_TYPES = ", ".join(job_type.value for job_type in JobType)


def parse_job_type(value: str | None) -> JobType | None:
    """None (every type) or one job type; anything else raises InvalidParameter naming `type`."""
    if value is None or value == "":
        return None
    try:
        return JobType(value.strip().lower())
    except ValueError:
        raise InvalidParameter(f'type must be one of {JOB_TYPES}, got "{value}"') from None


def retry_jobs(
    db: Database, prep: str | int, job_type: str | JobType | None = None
) -> list[JobView]:
    """Move the `error` jobs of `prep` (of one type, or all) to `ready`: attempts back to 0, no
    backoff, error and times cleared. Returns the jobs changed, lowest id first (none: [])."""
    wanted = job_type if isinstance(job_type, JobType) else parse_job_type(job_type)

    def run(session: Session) -> list[JobView]:
        attachments = [a.id for a in find_preparation(session, prep).source_attachments]
        which: list[ColumnElement[bool]] = [Job.attachment_id.in_(attachments)]
        if wanted is not None:
            which.append(Job.type == wanted)
        # A row another transaction holds is changing state right now: not ours to move.
        rows = queue.make_ready(session, *which, from_states=queue.RETRY_FROM, skip_locked=True)
        return sorted((JobView.model_validate(row) for row in rows), key=lambda j: j.id)

    views = db.run_write(run)
    for view in views:
        log_event(logger, "job.retried", job=view.id, type=view.type, state=view.state)
    return views
