"""How far a preparation has got: job counts per type and state, bytes scanned and packed.

The reads are SQLAlchemy Core statements on the light tables of db/tables.py, answered as
JSON-ready data (`preparation_status_data`), so that `dataset-worker prep status` needs neither
the ORM nor pydantic; `get_preparation_status` validates that data into the view once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, case, func, select

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db.enums import JobState, JobType, PieceType
from dataset_worker.db.tables import cars, file_ranges, files, jobs, source_attachments
from dataset_worker.prep.keys import preparation_row

if TYPE_CHECKING:
    from dataset_worker.db import Database
    from dataset_worker.prep.views import PreparationStatus, Stage

JobCounts = dict[JobType, dict[JobState, int]]
_ACTIVE = (JobState.CREATED, JobState.READY, JobState.PROCESSING)


def get_preparation_status(db: Database, name_or_id: str | int) -> PreparationStatus:
    """Counts of the jobs of every type and state (zeros included), files and bytes scanned,
    bytes packed, number of pieces, and the root CID of the newest DAG piece (or None)."""
    from dataset_worker.prep.views import PreparationStatus

    return PreparationStatus.model_validate(preparation_status_data(db, name_or_id))


def preparation_status_data(db: Database, name_or_id: str | int) -> dict[str, Any]:
    """The status as JSON-ready data: exactly `PreparationStatus.model_dump(mode="json",
    by_alias=True)` of `get_preparation_status`. Raises NotFound for an unknown preparation."""
    # One connection, one transaction (BEGIN DEFERRED on SQLite, as Database.read()): the
    # numbers agree with each other.
    with db.engine.connect() as connection:
        prep = preparation_row(connection, name_or_id)
        attachments = list(
            connection.scalars(
                select(source_attachments.c.id).where(
                    source_attachments.c.preparation_id == prep.id
                )
            )
        )
        files_scanned, bytes_scanned = _scanned(connection, attachments)
        root = connection.scalar(
            select(cars.c.root_cid)
            .where(cars.c.preparation_id == prep.id, cars.c.piece_type == PieceType.DAG.value)
            .order_by(cars.c.id.desc())
            .limit(1)
        )
        pieces = connection.scalar(
            select(func.count()).select_from(cars).where(cars.c.preparation_id == prep.id)
        )
        counts = _job_counts(connection, attachments)
        bytes_packed = _packed(connection, attachments)
        last_error = _last_error(connection, attachments)
    return {
        "id": prep.id,
        "name": prep.name,
        "stage": pipeline_stage(counts, no_dag=prep.no_dag),
        "autoChain": prep.auto_chain,
        "jobs": {
            job_type.value: {state.value: n for state, n in states.items()}
            for job_type, states in counts.items()
        },
        "filesScanned": files_scanned,
        "bytesScanned": bytes_scanned,
        "bytesPacked": bytes_packed,
        "pieces": pieces or 0,
        "rootCid": cid_to_str(root) if root else None,
        "lastError": last_error,
    }


def pipeline_stage(jobs: JobCounts, *, no_dag: bool) -> Stage:
    """Where the preparation is, from its job counts.

    error: some job failed for good (it blocks the chain until `prep retry`). new: no job at
    all (manual mode, before start-scan). Otherwise the first step with jobs left to run names
    the stage: scanning, packing, then dag; each is `paused` instead when its remaining jobs are
    all paused. packed: packing done and no daggen job (manual mode, before start-daggen); done:
    everything complete (or nothing to pack, or no DAG wanted).
    """
    if any(states[JobState.ERROR] for states in jobs.values()):
        return "error"
    scan, pack, dag = jobs[JobType.SCAN], jobs[JobType.PACK], jobs[JobType.DAGGEN]
    if not any(sum(states.values()) for states in jobs.values()):
        return "new"
    steps: tuple[tuple[dict[JobState, int], Stage], ...] = ((scan, "scanning"), (pack, "packing"))
    for step, name in steps:
        stage = _unfinished(step, name)
        if stage is not None:
            return stage
    if no_dag or not sum(pack.values()):
        return "done"  # nothing to build a DAG of: the DAG job could only fail
    if not sum(dag.values()):
        return "packed"
    return _unfinished(dag, "dag") or "done"


def _unfinished(states: dict[JobState, int], stage: Stage) -> Stage | None:
    """`stage` while jobs of the step remain to run, `paused` when all of those are paused."""
    if any(states[state] for state in _ACTIVE):
        return stage
    if states[JobState.PAUSED]:
        return "paused"
    return None


def _job_counts(connection: Connection, attachments: list[int]) -> JobCounts:
    counts = {job_type: dict.fromkeys(JobState, 0) for job_type in JobType}
    rows = connection.execute(
        select(jobs.c.type, jobs.c.state, func.count())
        .where(jobs.c.attachment_id.in_(attachments))
        .group_by(jobs.c.type, jobs.c.state)
    )
    for job_type, state, n in rows:
        counts[JobType(job_type)][JobState(state)] = n
    return counts


def _last_error(connection: Connection, attachments: list[int]) -> dict[str, Any] | None:
    """The newest job error: by finish time (a job without one, last), then by id."""
    row = connection.execute(
        select(jobs.c.id, jobs.c.type, jobs.c.state, jobs.c.attempts, jobs.c.error_message)
        .where(jobs.c.attachment_id.in_(attachments), jobs.c.error_message != "")
        .order_by(
            case((jobs.c.finished_at.is_(None), 1), else_=0),
            jobs.c.finished_at.desc(),
            jobs.c.id.desc(),
        )
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    return {
        "jobId": row.id,
        "type": row.type,
        "state": row.state,
        "attempts": row.attempts or 0,
        "message": row.error_message,
    }


def _scanned(connection: Connection, attachments: list[int]) -> tuple[int, int]:
    # Files of unknown size (-1) count as files but add no bytes.
    count, total = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((files.c.size > 0, files.c.size), else_=0)), 0),
        ).where(files.c.attachment_id.in_(attachments))
    ).one()
    return int(count), int(total)


def _packed(connection: Connection, attachments: list[int]) -> int:
    total = connection.scalar(
        select(func.coalesce(func.sum(file_ranges.c.length), 0))
        .select_from(file_ranges)
        .join(files, file_ranges.c.file_id == files.c.id)
        .where(files.c.attachment_id.in_(attachments))
        .where(file_ranges.c.cid.is_not(None), file_ranges.c.length > 0)
    )
    return int(total or 0)
