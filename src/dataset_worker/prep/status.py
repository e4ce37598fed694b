"""How far a preparation has got: job counts per type and state, bytes scanned and packed."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import Car, File, FileRange, Job, JobState, JobType, PieceType
from dataset_worker.prep.lookup import find_preparation
from dataset_worker.prep.views import PreparationStatus, Stage, cid_text

JobCounts = dict[JobType, dict[JobState, int]]
_ACTIVE = (JobState.CREATED, JobState.READY, JobState.PROCESSING)


def get_preparation_status(db: Database, name_or_id: str | int) -> PreparationStatus:
    """Counts of the jobs of every type and state (zeros included), files and bytes scanned,
    bytes packed, number of pieces, and the root CID of the newest DAG piece (or None)."""
    with db.read() as session:
        prep = find_preparation(session, name_or_id)
        attachments = [a.id for a in prep.source_attachments]
        files, bytes_scanned = _scanned(session, attachments)
        root = session.scalar(
            select(Car.root_cid)
            .where(Car.preparation_id == prep.id, Car.piece_type == PieceType.DAG)
            .order_by(Car.id.desc())
            .limit(1)
        )
        pieces = session.scalar(
            select(func.count()).select_from(Car).where(Car.preparation_id == prep.id)
        )
        jobs = _job_counts(session, attachments)
        return PreparationStatus(
            id=prep.id,
            name=prep.name,
            stage=pipeline_stage(jobs, no_dag=prep.no_dag),
            auto_chain=prep.auto_chain,
            jobs=jobs,
            files_scanned=files,
            bytes_scanned=bytes_scanned,
            bytes_packed=_packed(session, attachments),
            pieces=pieces or 0,
            root_cid=cid_text(root) or None,
        )


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


def _job_counts(session: Session, attachments: list[int]) -> JobCounts:
    counts = {job_type: dict.fromkeys(JobState, 0) for job_type in JobType}
    rows = session.execute(
        select(Job.type, Job.state, func.count())
        .where(Job.attachment_id.in_(attachments))
        .group_by(Job.type, Job.state)
    )
    for job_type, state, n in rows:
        counts[job_type][state] = n
    return counts


def _scanned(session: Session, attachments: list[int]) -> tuple[int, int]:
    # Files of unknown size (-1) count as files but add no bytes.
    count, total = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((File.size > 0, File.size), else_=0)), 0),
        ).where(File.attachment_id.in_(attachments))
    ).one()
    return int(count), int(total)


def _packed(session: Session, attachments: list[int]) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(FileRange.length), 0))
        .join(File, FileRange.file_id == File.id)
        .where(File.attachment_id.in_(attachments))
        .where(FileRange.cid.is_not(None), FileRange.length > 0)
    )
    return int(total or 0)
