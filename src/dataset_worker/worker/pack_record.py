"""The one transaction that records a packed CAR (spec §5.8, made atomic).

Singularity writes range CIDs, file CIDs, the `cars` row, `car_blocks` and the directory tree in
separate steps, so a failure half-way leaves a mix. Here they are one transaction that first
checks the job still belongs to this worker; a re-run replaces the job's earlier `cars` row
instead of adding a second one (cars.job_id is unique).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from dataset_worker.content.chunker import BlockKind
from dataset_worker.content.packer import PackedCar, PackedRange
from dataset_worker.content.unixfs import assemble_file_from_links
from dataset_worker.db.models import Car, CarBlock, File, FileRange, PieceType
from dataset_worker.worker.attachment import AttachmentSetup, lock_own_job
from dataset_worker.worker.bulk_insert import execute_many
from dataset_worker.worker.context import JobContext
from dataset_worker.worker.dirtree import FinalisedFile, update_directories

INSERT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class JobRange:
    """One range of the job with its file, as loaded before packing."""

    range_id: int
    offset: int
    length: int
    file_id: int
    path: str
    file_size: int
    mtime_ns: int
    directory_id: int | None

    @property
    def whole_file(self) -> bool:
        """The range covers its whole file (the file CID is the range CID); a range of unknown
        length (-1) always does."""
        return self.offset == 0 and (self.length == self.file_size or self.length == -1)


@dataclass(frozen=True, slots=True)
class Piece:
    """The finished CAR: piece CID and size, CAR root, byte size, where it was stored."""

    piece_cid: bytes
    piece_size: int
    root_cid: bytes
    file_size: int
    storage_id: int
    storage_path: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the transaction did: the car id, files finalised, and any row it replaced."""

    car_id: int
    finalised: list[FinalisedFile]
    finalised_paths: list[str]
    replaced: tuple[int | None, str] | None


def record_pack(
    session: Session,
    ctx: JobContext,
    setup: AttachmentSetup,
    ranges: Sequence[JobRange],
    packed: PackedCar,
    piece: Piece,
) -> Recorded:
    """Write everything a packed job produced, in the caller's (write) transaction."""
    lock_own_job(session, ctx)
    replaced = _drop_previous_car(session, ctx.job_id)
    by_id = {r.range_id: r for r in ranges}
    measured = {p.key: p for p in packed.ranges}
    _store_range_cids(session, ranges, measured)
    finalised, paths = _whole_files(session, ranges, measured)
    split, split_paths = _split_files(session, ranges)
    finalised += split
    paths += split_paths
    car_id = session.execute(
        insert(Car)
        .values(
            piece_type=PieceType.DATA,
            piece_cid=piece.piece_cid,
            piece_size=piece.piece_size,
            root_cid=piece.root_cid,
            file_size=piece.file_size,
            min_piece_size_padding=0,
            storage_id=piece.storage_id,
            storage_path=piece.storage_path,
            num_of_files=len(paths),
            preparation_id=setup.preparation_id,
            attachment_id=setup.attachment_id,
            job_id=ctx.job_id,
        )
        .returning(Car.id)
    ).scalar_one()
    if not setup.no_inline:
        _insert_blocks(session, car_id, packed, by_id)
    if not setup.no_dag:
        update_directories(session, finalised)
    return Recorded(car_id, finalised, paths, replaced)


def _drop_previous_car(session: Session, job_id: int) -> tuple[int | None, str] | None:
    """Delete the `cars` row (and blocks) of an earlier run of this job; return its location."""
    row = session.execute(
        select(Car.id, Car.storage_id, Car.storage_path).where(Car.job_id == job_id)
    ).one_or_none()
    if row is None:
        return None
    car_id, storage_id, storage_path = row
    session.execute(delete(CarBlock).where(CarBlock.car_id == car_id))
    session.execute(delete(Car).where(Car.id == car_id))
    return storage_id, storage_path


def _store_range_cids(
    session: Session, ranges: Sequence[JobRange], measured: Mapping[Hashable, PackedRange]
) -> None:
    rows: list[tuple[object, ...]] = []
    sizes: list[tuple[object, ...]] = []
    for r in ranges:
        packed = measured[r.range_id]
        rows.append((packed.cid, packed.length, r.range_id))
        if r.length == -1:  # unknown size: the file is as long as what was read (spec §5.8.1)
            sizes.append((packed.length, r.file_id))
    conn = session.connection()
    execute_many(conn, 'UPDATE file_ranges SET cid = ?, "length" = ? WHERE id = ?', rows)
    execute_many(conn, "UPDATE files SET size = ? WHERE id = ?", sizes)


def _file_name(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def _whole_files(
    session: Session, ranges: Sequence[JobRange], measured: Mapping[Hashable, PackedRange]
) -> tuple[list[FinalisedFile], list[str]]:
    """Files held whole by one range: file CID = range CID."""
    finalised: list[FinalisedFile] = []
    paths: list[str] = []
    rows: list[tuple[object, ...]] = []
    for r in ranges:
        packed = measured[r.range_id]
        if not r.whole_file or packed.cid is None:
            continue  # a split file, or a range skipped as inaccessible
        rows.append((packed.cid, r.file_id))
        paths.append(r.path)
        if r.directory_id is not None:
            finalised.append(
                FinalisedFile(r.directory_id, _file_name(r.path), packed.cid, packed.length)
            )
    _set_file_cids(session, rows)
    return finalised, paths


def _split_files(
    session: Session, ranges: Sequence[JobRange]
) -> tuple[list[FinalisedFile], list[str]]:
    """Split files touched by this job whose ranges all have CIDs now (spec §5.4).

    The file rows are locked first (ascending ids) so that two jobs finishing the last two
    ranges of one file at the same time cannot both miss the other's CID on PostgreSQL.
    """
    split = {r.file_id: r for r in ranges if not r.whole_file}
    if not split:
        return [], []
    ids = sorted(split)
    session.execute(select(File.id).where(File.id.in_(ids)).order_by(File.id).with_for_update())
    update_rows: list[tuple[object, ...]] = []
    finalised: list[FinalisedFile] = []
    paths: list[str] = []
    for file_id in ids:
        parts = session.execute(
            select(FileRange.cid, FileRange.length)
            .where(FileRange.file_id == file_id)
            .order_by(FileRange.offset)
        ).all()
        links = [(cid, length) for cid, length in parts if cid is not None]
        if len(links) < len(parts):
            continue  # another job still has to pack a part of this file
        dag = assemble_file_from_links(links)
        update_rows.append((dag.root_cid, file_id))
        r = split[file_id]
        paths.append(r.path)
        if r.directory_id is not None:
            finalised.append(
                FinalisedFile(
                    r.directory_id, _file_name(r.path), dag.root_cid, dag.size, tuple(dag.nodes)
                )
            )
    _set_file_cids(session, update_rows)
    return finalised, paths


def _set_file_cids(session: Session, rows: list[tuple[object, ...]]) -> None:
    """(cid, file id) rows."""
    execute_many(session.connection(), "UPDATE files SET cid = ? WHERE id = ?", rows)


CAR_BLOCK_INSERT = (
    "INSERT INTO car_blocks (cid, car_offset, car_block_length, varint, raw_block, file_offset, "
    "car_id, file_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _insert_blocks(
    session: Session, car_id: int, packed: PackedCar, by_id: dict[int, JobRange]
) -> None:
    """car_blocks rows: leaves point into their file, dag-pb nodes carry their bytes."""
    conn = session.connection()
    batch: list[tuple[object, ...]] = []
    for block in packed.blocks:
        row: tuple[object, ...]
        if block.kind is BlockKind.LEAF:
            file_id = by_id[block.range_key].file_id  # type: ignore[index]  # keys are range ids
            row = (
                block.cid,
                block.car_offset,
                block.car_block_length,
                block.varint,
                None,
                block.file_offset,
                car_id,
                file_id,
            )
        else:
            row = (
                block.cid,
                block.car_offset,
                block.car_block_length,
                block.varint,
                block.raw_block,
                None,
                car_id,
                None,
            )
        batch.append(row)
        if len(batch) >= INSERT_BATCH:
            execute_many(conn, CAR_BLOCK_INSERT, batch)
            batch = []
    execute_many(conn, CAR_BLOCK_INSERT, batch)
