"""Packed preparations for tests: created with `prep create`'s use-case, then scanned, packed and
(optionally) given their DAG by the real job bodies run in process; and row counts per table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataset_worker.content.varint import encode_uvarint
from dataset_worker.db import Database
from dataset_worker.db.models import (
    Car,
    CarBlock,
    Directory,
    File,
    FileRange,
    Job,
    JobState,
    JobType,
    OutputAttachment,
    Preparation,
    SourceAttachment,
    Storage,
    Worker,
    utcnow,
)
from dataset_worker.prep import CreatePreparationRequest, create_preparation
from tests.support.jobs import add_job, run_ready_jobs, write_files

TABLES = (
    "preparations",
    "source_attachments",
    "output_attachments",
    "storages",
    "jobs",
    "directories",
    "files",
    "file_ranges",
    "cars",
    "car_blocks",
)


@dataclass(frozen=True)
class PackedPrep:
    """A preparation whose jobs have all run: ids and folders."""

    id: int
    name: str
    attachment_id: int
    source: Path
    output: Path


def packed_preparation(
    db: Database,
    root: Path,
    name: str,
    files: dict[str, int | bytes],
    *,
    max_size: str = "1000KiB",
    daggen: bool = True,
    empty_folders: tuple[str, ...] = (),
) -> PackedPrep:
    """Create `name` over `root/<name>-src` holding `files` (and `empty_folders`), then scan,
    pack and run daggen."""
    source, output = root / f"{name}-src", root / f"{name}-cars"
    source.mkdir(parents=True)
    write_files(source, files)
    for folder in empty_folders:
        (source / folder).mkdir(parents=True)
    request = CreatePreparationRequest(
        name=name, source=str(source), output=str(output), max_size=max_size
    )
    prep_id = create_preparation(db, request).id
    with db.read() as session:
        attachment = session.scalars(
            select(SourceAttachment.id).where(SourceAttachment.preparation_id == prep_id)
        ).one()
    steps = (JobType.SCAN, JobType.PACK, JobType.DAGGEN) if daggen else (JobType.SCAN, JobType.PACK)
    for job_type in steps:
        _run_step(db, attachment, job_type)
    return PackedPrep(prep_id, name, attachment, source, output)


def _run_step(db: Database, attachment: int, job_type: JobType) -> None:
    """Run the ready jobs of one type; scan and daggen are queued first unless they already are
    (a preparation that chains its steps queues them by itself)."""
    if job_type is not JobType.PACK:
        with db.read() as session:
            queued = session.scalar(
                select(Job.id).where(
                    Job.attachment_id == attachment,
                    Job.type == job_type,
                    Job.state == JobState.READY,
                )
            )
        if queued is None:
            add_job(db, attachment, job_type)
    runs = run_ready_jobs(db, job_type, attachment_id=attachment)
    assert runs and all(run.state is JobState.COMPLETE for run in runs), runs


def claim(db: Database, job_id: int) -> str:
    """Mark job `job_id` processing by a new worker row (as a worker's claim does)."""
    worker = f"test-worker-{job_id}"
    with db.write() as session:
        session.add(Worker(id=worker, last_heartbeat=utcnow(), hostname="test"))
        session.flush()
        job = session.get(Job, job_id)
        assert job is not None
        job.state, job.worker_id, job.started_at = JobState.PROCESSING, worker, utcnow()
    return worker


def table_counts(db: Database) -> dict[str, int]:
    """Rows in every table a preparation has rows in."""
    models = (
        Preparation,
        SourceAttachment,
        OutputAttachment,
        Storage,
        Job,
        Directory,
        File,
        FileRange,
        Car,
        CarBlock,
    )
    with db.read() as session:
        return {
            model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in models
        }


def prep_counts(db: Database, prep: PackedPrep) -> dict[str, int]:
    """Rows of one preparation in every table, found through its ids and storage names."""
    attachment = prep.attachment_id
    files = select(File.id).where(File.attachment_id == attachment)
    cars = select(Car.id).where(Car.preparation_id == prep.id)
    names = (f"{prep.name}-source", f"{prep.name}-output")
    queries = {
        "preparations": select(func.count()).where(Preparation.id == prep.id),
        "source_attachments": select(func.count()).where(
            SourceAttachment.preparation_id == prep.id
        ),
        "output_attachments": select(func.count()).where(
            OutputAttachment.preparation_id == prep.id
        ),
        "storages": select(func.count()).where(Storage.name.in_(names)),
        "jobs": select(func.count()).where(Job.attachment_id == attachment),
        "directories": select(func.count()).where(Directory.attachment_id == attachment),
        "files": select(func.count()).where(File.attachment_id == attachment),
        "file_ranges": select(func.count()).where(FileRange.file_id.in_(files)),
        "cars": select(func.count()).where(Car.preparation_id == prep.id),
        "car_blocks": select(func.count()).where(CarBlock.car_id.in_(cars)),
    }
    with db.read() as session:
        return {table: int(session.scalar(query) or 0) for table, query in queries.items()}


def described_blocks(session: Session) -> int:
    """Blocks the database describes: `car_blocks` rows plus ranges packed as one leaf, which
    keep their CAR offset instead of a row (docs/architecture.md#one-leaf-ranges)."""
    rows = session.scalar(select(func.count()).select_from(CarBlock)) or 0
    leaves = session.scalar(select(func.count()).where(FileRange.car_offset.is_not(None))) or 0
    return int(rows) + int(leaves)


def leaf_block_row(leaf: FileRange, car_id: int) -> CarBlock:
    """The `car_blocks` row a one-leaf range stands for, as pack recorded it before migration
    0010: varint(CID + data), CID, then the range's bytes, from the range's CAR offset."""
    assert leaf.cid is not None and leaf.car_offset is not None
    varint = encode_uvarint(len(leaf.cid) + leaf.length)
    return CarBlock(
        cid=leaf.cid,
        car_offset=leaf.car_offset,
        car_block_length=len(varint) + len(leaf.cid) + leaf.length,
        varint=varint,
        raw_block=None,
        file_offset=leaf.offset,
        car_id=car_id,
        file_id=leaf.file_id,
    )
