"""How far a preparation has got: job counts per type and state, bytes scanned and packed."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import Car, File, FileRange, Job, JobState, JobType, PieceType
from dataset_worker.prep.lookup import find_preparation
from dataset_worker.prep.views import PreparationStatus, cid_text


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
        return PreparationStatus(
            id=prep.id,
            name=prep.name,
            jobs=_job_counts(session, attachments),
            files_scanned=files,
            bytes_scanned=bytes_scanned,
            bytes_packed=_packed(session, attachments),
            pieces=pieces or 0,
            root_cid=cid_text(root) or None,
        )


def _job_counts(session: Session, attachments: list[int]) -> dict[JobType, dict[JobState, int]]:
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
