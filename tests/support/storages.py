"""Preparations over any storage type (local folders, S3 buckets) for job-level tests, and the
results that must not depend on where the files were: the pieces, their bytes and the root CID."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import (
    Car,
    Directory,
    JobType,
    OutputAttachment,
    Preparation,
    SourceAttachment,
    Storage,
)
from dataset_worker.prep.create import validate_sizes
from tests.support.jobs import JobRun, add_job, run_job, scan_and_pack
from tests.support.s3servers import S3Server


@dataclass(frozen=True)
class StorageSpec:
    """A storages row to create: type, path and config."""

    type: str
    path: str
    config: dict[str, Any] = field(default_factory=dict)


def make_preparation(
    db: Database,
    name: str,
    source: StorageSpec,
    output: StorageSpec,
    *,
    max_size: int,
    min_piece_size: int = 1 << 20,
) -> int:
    """Insert a preparation with the given storages and its root directory; the attachment id."""
    limits = validate_sizes(max_size, None, min_piece_size)
    with db.write() as session:
        prep = Preparation(
            name=name,
            max_size=max_size,
            piece_size=limits.piece_size,
            min_piece_size=limits.min_piece_size,
        )
        attachment = SourceAttachment(
            storage=Storage(
                name=f"{name}-source", type=source.type, path=source.path, config=source.config
            )
        )
        prep.source_attachments.append(attachment)
        prep.output_attachments.append(
            OutputAttachment(
                storage=Storage(
                    name=f"{name}-output", type=output.type, path=output.path, config=output.config
                )
            )
        )
        session.add(prep)
        session.flush()
        session.add(Directory(name="", parent_id=None, attachment_id=attachment.id))
        return attachment.id


@dataclass(frozen=True)
class Prepared:
    """What a full run produced: (type, piece CID, root CID, size) per piece, sorted; the
    sha256 of each piece's bytes by piece CID; the dataset's root CID."""

    pieces: list[tuple[str, str, str, int]]
    digests: dict[str, str]
    root: str


def run_all(db: Database, attachment_id: int) -> list[JobRun]:
    """Scan, every pack job, then daggen; returns every run (all must be complete)."""
    runs = scan_and_pack(db, attachment_id)
    runs.append(run_job(db, add_job(db, attachment_id, JobType.DAGGEN)))
    return runs


def prepared(
    db: Database, attachment_id: int, *, folder: Path | None = None, s3: S3Server | None = None
) -> Prepared:
    """Read the pieces of the attachment back from the database and from the output (a local
    `folder`, or the S3 server's bucket given by the output storage path)."""
    with db.read() as session:
        cars = session.execute(
            select(Car.piece_type, Car.piece_cid, Car.root_cid, Car.file_size, Car.storage_path)
            .where(Car.attachment_id == attachment_id)
            .order_by(Car.id)
        ).all()
        root = session.scalar(
            select(Directory.cid).where(
                Directory.attachment_id == attachment_id, Directory.parent_id.is_(None)
            )
        )
        output_path = session.scalar(
            select(Storage.path)
            .join(OutputAttachment, OutputAttachment.storage_id == Storage.id)
            .join(
                SourceAttachment, SourceAttachment.preparation_id == OutputAttachment.preparation_id
            )
            .where(SourceAttachment.id == attachment_id)
        )
    digests: dict[str, str] = {}
    for car in cars:
        digests[cid_to_str(car.piece_cid)] = hashlib.sha256(
            _read_piece(car.storage_path, folder, s3, output_path)
        ).hexdigest()
    pieces = sorted(
        (str(c.piece_type), cid_to_str(c.piece_cid), cid_to_str(c.root_cid), c.file_size)
        for c in cars
    )
    assert root is not None, "the root directory has no CID"
    return Prepared(pieces, digests, cid_to_str(root))


def _read_piece(
    storage_path: str, folder: Path | None, s3: S3Server | None, output_path: str | None
) -> bytes:
    if folder is not None:
        return (folder / storage_path).read_bytes()
    assert s3 is not None and output_path is not None
    bucket, _, prefix = output_path.removeprefix("s3://").partition("/")
    key = f"{prefix.strip('/')}/{storage_path}" if prefix.strip("/") else storage_path
    body: bytes = s3.client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body
