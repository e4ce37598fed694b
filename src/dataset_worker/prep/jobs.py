"""The jobs list (design §3.5): newest first, filtered, with keyset pagination.

Built to stay fast with millions of rows: `WHERE <filters> AND id < :cursor ORDER BY id DESC
LIMIT :n` walks an index backwards (the primary key, ix_jobs_state_id, ix_jobs_type_id or
ix_jobs_type_state_id) and stops after n rows; the preparation name is looked up for those rows
only. An offset would make deep pages slow; the cursor is the last id of the previous page.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from sqlalchemy import ColumnElement, select

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType, Preparation, SourceAttachment
from dataset_worker.prep.errors import InvalidParameter
from dataset_worker.prep.lookup import MAX_ID, find_preparation, is_all_digits
from dataset_worker.prep.views import JobListItem, JobPage, as_utc

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000

E = TypeVar("E", bound=enum.StrEnum)


def list_jobs(
    db: Database,
    *,
    status: str | None = None,
    type: str | None = None,  # named as the API field, though it shadows the builtin
    preparation: str | int | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> JobPage:
    """One page of jobs, newest first.

    `status` and `type` filter by job state and type; `preparation` (name or id) by preparation;
    `limit` is 1..1000 (default 50); `cursor` is the `nextCursor` of the previous page. Bad
    values raise InvalidParameter; an unknown preparation raises NotFound.
    """
    state = _parse_choice(JobState, "status", status)
    job_type = _parse_choice(JobType, "type", type)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    before = parse_cursor(cursor)
    query = (
        select(
            Job.id,
            Job.type,
            Job.state,
            Job.started_at,
            Job.finished_at,
            Job.worker_id,
            Job.error_message,
            Preparation.name,
        )
        .outerjoin(SourceAttachment, Job.attachment_id == SourceAttachment.id)
        .outerjoin(Preparation, SourceAttachment.preparation_id == Preparation.id)
    )
    if state is not None:
        query = query.where(Job.state == state)
    if job_type is not None:
        query = query.where(Job.type == job_type)
    if before is not None:
        query = query.where(Job.id < before)
    with db.read() as session:
        if preparation is not None:
            prep = find_preparation(session, preparation)
            query = query.where(_of_attachments([a.id for a in prep.source_attachments]))
        # One row more than asked tells whether another page exists.
        rows = session.execute(query.order_by(Job.id.desc()).limit(limit + 1)).all()
    items = [
        JobListItem(
            id=row.id,
            type=row.type,
            status=row.state,
            started=as_utc(row.started_at) if row.started_at else None,
            finished=as_utc(row.finished_at) if row.finished_at else None,
            preparation=row.name,
            worker=row.worker_id,
            error=row.error_message or None,
        )
        for row in rows[:limit]
    ]
    next_cursor = str(items[-1].id) if len(rows) > limit else None
    return JobPage(jobs=items, next_cursor=next_cursor)


def _of_attachments(ids: list[int]) -> ColumnElement[bool]:
    # With one attachment (the usual case) an equality lets the index on attachment_id, whose
    # entries are ordered by id within a value on SQLite, deliver rows newest first with no sort.
    if len(ids) == 1:
        return Job.attachment_id == ids[0]
    return Job.attachment_id.in_(ids)


def parse_cursor(cursor: str | None) -> int | None:
    """The id a page starts below; None for the first page."""
    if cursor is None or cursor == "":
        return None
    if not is_all_digits(cursor) or not 0 < int(cursor) <= MAX_ID:
        raise InvalidParameter(
            f'cursor "{cursor}" is not valid: pass the nextCursor of a previous page'
        )
    return int(cursor)


def _parse_choice(choices: type[E], field: str, value: str | None) -> E | None:
    if value is None or value == "":
        return None
    try:
        return choices(value.strip().lower())
    except ValueError:
        allowed = ", ".join(member.value for member in choices)
        raise InvalidParameter(f'{field} must be one of {allowed}, got "{value}"') from None
