"""The one transaction that records a packed CAR (docs/architecture.md#recording-a-pack, made atomic).

Singularity writes range CIDs, file CIDs, the `cars` row, `car_blocks` and the directory tree in
separate steps, so a failure half-way leaves a mix. Here they are one transaction that first
checks the job still belongs to this worker; a re-run replaces the job's earlier `cars` row
instead of adding a second one (cars.job_id is unique). The rows come from the job's spool in
batches, so the transaction's memory does not grow with the number of files either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.orm import Session

from dataset_worker.content.unixfs import assemble_file_from_links
from dataset_worker.db.filecid import ONE_RANGE
from dataset_worker.db.models import Car, CarBlock, File, FileRange, PieceType
from dataset_worker.db.nodebytes import stored_node
from dataset_worker.db.pagecache import larger_page_cache
from dataset_worker.worker.jobs.attachment import AttachmentSetup, lock_own_job
from dataset_worker.worker.jobs.bulk_insert import execute_many
from dataset_worker.worker.jobs.dirtree import FinalisedFile, update_directories
from dataset_worker.worker.jobs.pack.spool import PackSpool, SpooledRange
from dataset_worker.worker.jobs.pieces import CAR_BLOCK_INSERT
from dataset_worker.worker.runtime.context import JobContext

INSERT_BATCH = 1000
# SQLite page cache while recording (db/pagecache.py). Jobs of 60k tiny files on a 1M-file
# database, the default 2 MB against 64 MiB: about a tenth less CPU (most of it system time: page
# reads and WAL spills) and a tenth less time holding the write lock, for ~26 MiB more peak RSS.
RECORD_CACHE_MIB = 64
# A finalised file's CID (or the one-range mark) and sha256: whole files and split ones alike.
_SET_FILE_CID = "UPDATE files SET cid = ?, sha256 = ? WHERE id = ?"
# Files per update_directories call (whole directories kept together). Each call rebuilds every
# ancestor up to the root once, so small batches rebuild the (often wide) root many times.
DIRECTORY_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class Piece:
    """The finished CAR: piece CID and size, CAR root, byte size, where it was stored."""

    piece_cid: bytes
    piece_size: int
    root_cid: bytes
    file_size: int
    storage_id: int | None  # None with storage_path "": an inline piece (no CAR file)
    storage_path: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the transaction did: the car id, how many files it finalised (whole files, whose
    paths the spool has, then the split files in `split_paths`), and any row it replaced.
    `unhashed_split_ids`: split files it finalised without a sha256 (their ranges were spread
    over several jobs), which the job reads once more to hash."""

    car_id: int
    files: int
    split_paths: tuple[str, ...]
    replaced: tuple[int | None, str] | None
    unhashed_split_ids: tuple[int, ...] = ()


class _DirectoryBatches:
    """Finalised files added to their directories a batch of directories at a time.

    Each `update_directories` call reads the rows it rewrites, so later calls in this
    transaction build on earlier ones and the end result is that of one call with every file.
    A batch ends only where the directory changes, so a directory is rewritten once when its
    files come together (the scan's order); split files come last, with the final batch.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._batch: list[FinalisedFile] = []

    def add(self, directory_id: int, name: str, cid: bytes, size: int) -> None:
        batch = self._batch
        if len(batch) >= DIRECTORY_BATCH and batch[-1].directory_id != directory_id:
            update_directories(self._session, batch)
            batch = self._batch = []
        batch.append(FinalisedFile(directory_id, name, cid, size))

    def finish(self, split_done: list[FinalisedFile]) -> None:
        update_directories(self._session, self._batch + split_done)
        self._batch = []


def record_pack(
    session: Session,
    ctx: JobContext,
    setup: AttachmentSetup,
    spool: PackSpool,
    piece: Piece,
) -> Recorded:
    """Write everything a packed job produced, in the caller's (write) transaction."""
    with larger_page_cache(session.connection(), RECORD_CACHE_MIB):
        return _record_pack(session, ctx, setup, spool, piece)


def _record_pack(
    session: Session, ctx: JobContext, setup: AttachmentSetup, spool: PackSpool, piece: Piece
) -> Recorded:
    lock_own_job(session, ctx)
    replaced = _drop_previous_car(session, ctx.job_id)
    directories = None if setup.no_dag else _DirectoryBatches(session)
    whole_files, split = _store_ranges(session, spool, directories)
    split_done, split_paths, unhashed = _split_files(session, split)
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
            num_of_files=whole_files + len(split_paths),
            preparation_id=setup.preparation_id,
            attachment_id=setup.attachment_id,
            job_id=ctx.job_id,
        )
        .returning(Car.id)
    ).scalar_one()
    if not setup.no_inline:
        _insert_blocks(session, car_id, spool)
    if directories is not None:
        directories.finish(split_done)
    return Recorded(
        car_id, whole_files + len(split_paths), tuple(split_paths), replaced, tuple(unhashed)
    )


def finalised_paths(spool: PackSpool, recorded: Recorded) -> Iterator[str]:
    """Paths of the files the recorded job finalised: whole files in range order, then split."""
    for r in spool.ranges():
        if _finalises_whole_file(r):
            yield r.path
    yield from recorded.split_paths


def _finalises_whole_file(r: SpooledRange) -> bool:
    """A range holding its whole file gives the file its CID, unless it was skipped."""
    return r.whole_file and r.cid is not None


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


def _store_ranges(
    session: Session, spool: PackSpool, directories: _DirectoryBatches | None
) -> tuple[int, dict[int, SpooledRange]]:
    """Range CIDs, lengths and one-leaf CAR offsets, sizes of files of unknown size, and files
    held whole by one range marked packed (their CID is the range's: `db/filecid.py`) with
    their sha256 when hashed (docs/architecture.md#recording-a-pack); those files go to
    `directories` too. Returns the count of those whole files and the last range of each split
    file, by file id.

    One pass over the spool, on plain tuples: it runs once per file inside the write
    transaction, which on SQLite holds the database's only write lock.
    """
    conn = session.connection()
    range_rows: list[tuple[object, ...]] = []
    size_rows: list[tuple[object, ...]] = []
    file_rows: list[tuple[object, ...]] = []
    whole_files = 0
    split: dict[int, SpooledRange] = {}
    for row in spool.range_rows():
        range_id, file_id, cid, length, directory_id, path, whole, unknown, sha256, offset = row
        range_rows.append((cid, length, offset, range_id))
        if unknown:
            size_rows.append((length, file_id))
        if not whole:
            split[file_id] = SpooledRange(*row)
        elif cid is not None:  # None: a range skipped as inaccessible
            file_rows.append((ONE_RANGE, sha256, file_id))
            whole_files += 1
            if directories is not None and directory_id is not None:
                directories.add(directory_id, _file_name(path), cid, length)
        if len(range_rows) >= INSERT_BATCH:  # the other two lists are never longer
            _flush_ranges(conn, range_rows, size_rows, file_rows)
    _flush_ranges(conn, range_rows, size_rows, file_rows)
    return whole_files, split


def _flush_ranges(
    conn: Connection,
    range_rows: list[tuple[object, ...]],
    size_rows: list[tuple[object, ...]],
    file_rows: list[tuple[object, ...]],
) -> None:
    """Send the pending rows of `_store_ranges` and empty the lists."""
    execute_many(
        conn,
        'UPDATE file_ranges SET cid = ?, "length" = ?, car_offset = ? WHERE id = ?',
        range_rows,
    )
    execute_many(conn, "UPDATE files SET size = ? WHERE id = ?", size_rows)
    execute_many(conn, _SET_FILE_CID, file_rows)
    range_rows.clear()
    size_rows.clear()
    file_rows.clear()


def _file_name(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def _split_files(
    session: Session, split: dict[int, SpooledRange]
) -> tuple[list[FinalisedFile], list[str], list[int]]:
    """Split files touched by this job whose ranges all have CIDs now (docs/formats.md#file-dag), with their
    sha256 when this job hashed every range; the ids of those it could not hash come last.

    The file rows are locked first (ascending ids) so that two jobs finishing the last two
    ranges of one file at the same time cannot both miss the other's CID on PostgreSQL.
    """
    if not split:
        return [], [], []
    ids = sorted(split)
    session.execute(select(File.id).where(File.id.in_(ids)).order_by(File.id).with_for_update())
    update_rows: list[tuple[object, ...]] = []
    finalised: list[FinalisedFile] = []
    paths: list[str] = []
    unhashed: list[int] = []
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
        r = split[file_id]  # the file's last range in this job: it carries a completed hash
        update_rows.append((dag.root_cid, r.sha256, file_id))
        if r.sha256 is None:
            unhashed.append(file_id)
        paths.append(r.path)
        if r.directory_id is not None:
            finalised.append(
                FinalisedFile(
                    r.directory_id, _file_name(r.path), dag.root_cid, dag.size, tuple(dag.nodes)
                )
            )
    execute_many(session.connection(), _SET_FILE_CID, update_rows)
    return finalised, paths, unhashed


def _insert_blocks(session: Session, car_id: int, spool: PackSpool) -> None:
    """car_blocks rows: leaves point into their file, dag-pb nodes carry their bytes (a file's
    nodes are CIDs and sizes, which do not compress: `stored_node` keeps them raw, and a job of
    tiny files has none)."""
    conn = session.connection()
    rows: list[tuple[object, ...]] = []
    for cid, car_offset, length, varint, node, file_offset, file_id in spool.blocks():
        raw, zipped = stored_node(node) if node is not None else (None, None)
        rows.append((cid, car_offset, length, varint, raw, zipped, file_offset, car_id, file_id))
        if len(rows) >= INSERT_BATCH:
            execute_many(conn, CAR_BLOCK_INSERT, rows)
            rows.clear()
    execute_many(conn, CAR_BLOCK_INSERT, rows)
