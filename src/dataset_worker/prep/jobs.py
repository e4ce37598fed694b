"""The jobs list (docs/api.md#jobs-list): newest first, filtered, with keyset pagination.

Built to stay fast with millions of rows: `WHERE <filters> AND id < :cursor ORDER BY id DESC
LIMIT :n` walks an index backwards (the primary key, ix_jobs_state_id, ix_jobs_type_id or
ix_jobs_type_state_id) and stops after n rows; the preparation name is looked up for those rows
only. An offset would make deep pages slow; the cursor is the last id of the previous page.

The read path is lean because the admin page polls it: a Core select returning plain tuples,
turned straight into the JSON-ready dicts of JobPage's wire form (`job_page_data`). Building
pydantic models per row cost more than the query itself; `list_jobs` validates the page once
for callers that want the model. The tables are the light Core ones of db/tables.py, so that
`dataset-worker jobs list` needs neither the ORM nor pydantic (cli/prep.py).
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Executable, Integer, bindparam, select

from dataset_worker.db.enums import JobState, JobType
from dataset_worker.db.tables import jobs as job
from dataset_worker.db.tables import preparations as preparation
from dataset_worker.db.tables import source_attachments as attachment
from dataset_worker.defaults import DEFAULT_JOBS_LIMIT, MAX_JOBS_LIMIT
from dataset_worker.prep.errors import InvalidParameter
from dataset_worker.prep.keys import MAX_ID, MAX_KEY_LENGTH, is_all_digits, preparation_row

if TYPE_CHECKING:
    from dataset_worker.db import Database
    from dataset_worker.prep.views import JobPage

# The bounds of a jobs page request, shared by the CLI, the API routes and the API's fast path.
DEFAULT_LIMIT = DEFAULT_JOBS_LIMIT
MAX_LIMIT = MAX_JOBS_LIMIT
MAX_CURSOR_LENGTH = 20  # a cursor is an id: MAX_ID has 19 digits
MAX_PREPARATION_LENGTH = MAX_KEY_LENGTH

E = TypeVar("E", bound=enum.StrEnum)

# Type and state come back as the stored strings: the JSON needs the text, not the enum member.
_COLUMNS = (
    job.c.id,
    job.c.type,
    job.c.state,
    job.c.started_at,
    job.c.finished_at,
    preparation.c.name,
    job.c.worker_id,
    job.c.error_message,
    job.c.attempts,
    job.c.next_attempt_at,
    job.c.last_worker_id,
    job.c.last_worker_host,
)

_ATTACHMENTS = select(preparation.c.id, attachment.c.id).outerjoin(
    attachment, attachment.c.preparation_id == preparation.c.id
)
_ATTACHMENTS_BY_ID = _ATTACHMENTS.where(preparation.c.id == bindparam("key"))
_ATTACHMENTS_BY_NAME = _ATTACHMENTS.where(preparation.c.name == bindparam("key"))


@dataclass(frozen=True)
class JobsQuery:
    """Checked parameters of a jobs page (see `parse_jobs_query`)."""

    state: JobState | None = None
    job_type: JobType | None = None
    preparation: str | None = None
    limit: int = DEFAULT_LIMIT
    before: int | None = None


def parse_jobs_query(
    *,
    status: str | None = None,
    type: str | None = None,  # named as the API field, though it shadows the builtin
    preparation: str | int | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> JobsQuery:
    """Check the parameters of `list_jobs`; bad values raise InvalidParameter."""
    state = _parse_choice(JobState, "status", status)
    job_type = _parse_choice(JobType, "type", type)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return JobsQuery(
        state=state,
        job_type=job_type,
        preparation=None if preparation is None else str(preparation),
        limit=limit,
        before=parse_cursor(cursor),
    )


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
    `limit` is 1..MAX_LIMIT (default DEFAULT_LIMIT); `cursor` is the `nextCursor` of the previous page. Bad
    values raise InvalidParameter; an unknown preparation raises NotFound.
    """
    from dataset_worker.prep.views import JobPage

    query = parse_jobs_query(
        status=status, type=type, preparation=preparation, limit=limit, cursor=cursor
    )
    return JobPage.model_validate(job_page_data(db, query))


def job_page_data(db: Database, query: JobsQuery) -> dict[str, Any]:
    """One page as JSON-ready data: exactly `JobPage.model_dump(mode="json", by_alias=True)`.

    Raises NotFound for an unknown preparation.
    """
    params: dict[str, Any] = {
        # The stored strings (the columns are typed as text, see db/tables.py).
        "state": None if query.state is None else query.state.value,
        "job_type": None if query.job_type is None else query.job_type.value,
        "before": query.before,
        "limit": query.limit + 1,  # one row more than asked tells whether another page exists
    }
    # A plain connection, not a Session: no ORM objects on this path (BEGIN DEFERRED on SQLite
    # comes from the engine's "begin" hook, as for Database.read()).
    with db.engine.connect() as connection:
        attachments = None
        if query.preparation is not None:
            attachments = _attachments_of(connection, query.preparation)
            params["attachments"] = attachments
            params["attachment"] = attachments[0] if attachments else None
        statement = _statement(
            query.state is not None,
            query.job_type is not None,
            query.before is not None,
            None if attachments is None else len(attachments) == 1,
        )
        rows = connection.execute(statement, params).all()
    jobs = [
        {
            "id": job_id,
            "type": job_type,
            "status": state,
            "started": rfc3339(started) if started is not None else None,
            "finished": rfc3339(finished) if finished is not None else None,
            "preparation": name,
            "worker": worker,
            "error": error or None,
            "attempts": attempts,
            "nextAttemptAt": rfc3339(next_at) if next_at is not None else None,
            "lastWorker": last_worker,
            "lastWorkerHost": last_host,
        }
        for (
            job_id,
            job_type,
            state,
            started,
            finished,
            name,
            worker,
            error,
            attempts,
            next_at,
            last_worker,
            last_host,
        ) in rows[: query.limit]
    ]
    next_cursor = str(jobs[-1]["id"]) if len(rows) > query.limit else None
    return {"jobs": jobs, "nextCursor": next_cursor}


def _attachments_of(connection: Connection, preparation: str) -> list[int]:
    """Ids of the source attachments of a preparation given by name or id (one query)."""
    key_is_id = is_all_digits(preparation)
    if preparation.strip() and (not key_is_id or int(preparation) <= MAX_ID):
        statement = _ATTACHMENTS_BY_ID if key_is_id else _ATTACHMENTS_BY_NAME
        rows = connection.execute(
            statement, {"key": int(preparation) if key_is_id else preparation}
        ).all()
        if rows:  # one row per attachment, or one with a NULL id when there is none
            return [found for _, found in rows if found is not None]
    # Unknown or malformed: the shared lookup raises the error every command gives (or finds
    # a preparation created in the meantime).
    prep_id = preparation_row(connection, preparation).id
    return list(
        connection.scalars(select(attachment.c.id).where(attachment.c.preparation_id == prep_id))
    )


def rfc3339(value: datetime) -> str:
    """`value` as pydantic writes a UTC datetime: "2024-01-02T03:04:05Z", microseconds if any.

    SQLite hands back naive values (stored as UTC); PostgreSQL aware ones.
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


@functools.cache
def _statement(
    by_state: bool, by_type: bool, by_cursor: bool, one_attachment: bool | None
) -> Executable:
    """The select for one combination of filters, built once (building one costs more than
    running it); values come as bound parameters. `one_attachment` is None without a
    preparation filter."""
    statement = (
        select(*_COLUMNS)
        .select_from(job)
        .outerjoin(attachment, job.c.attachment_id == attachment.c.id)
        .outerjoin(preparation, attachment.c.preparation_id == preparation.c.id)
    )
    if by_state:
        statement = statement.where(job.c.state == bindparam("state"))
    if by_type:
        statement = statement.where(job.c.type == bindparam("job_type"))
    if by_cursor:
        statement = statement.where(job.c.id < bindparam("before"))
    if one_attachment is not None:
        # With one attachment (the usual case) an equality lets the index on attachment_id,
        # whose entries are ordered by id within a value on SQLite, deliver rows newest first
        # with no sort.
        statement = statement.where(
            job.c.attachment_id == bindparam("attachment")
            if one_attachment
            else job.c.attachment_id.in_(bindparam("attachments", expanding=True))
        )
    return statement.order_by(job.c.id.desc()).limit(bindparam("limit", type_=Integer))


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
