"""The pack job (docs/architecture.md#pack-job): the job's ranges → one CAR file named `<pieceCID>.car` + its rows.

Flow: size up the job's ranges → pick an output with room → stream every range's blocks (the
ranges read from the DB a page at a time, in id order) into a temporary CAR while commP hashes
the same bytes, and each block's and range's record into a spool file → seal (commP, piece
size, padding of small CARs) → rename into place → record everything from the spool in one
ownership-checked transaction. Memory stays flat in the number of files. Any failure,
cancellation included, removes the temporary file; nothing is recorded.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import NamedTuple

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from dataset_worker.content.chunker import CHUNK_SIZE
from dataset_worker.content.cid import cid_to_str
from dataset_worker.content.packer import LeafBatch, RangeSource, write_ranges
from dataset_worker.db import Database
from dataset_worker.db.models import Car, File, FileRange
from dataset_worker.db.plans import serial_plans
from dataset_worker.logs import log_event
from dataset_worker.storage import RangeStream, SourceChangedError, SourceStorage, choose_output
from dataset_worker.storage.base import SmallRange, SmallRangeReader
from dataset_worker.worker.jobs.attachment import AttachmentSetup, OutputTarget, load_setup
from dataset_worker.worker.jobs.carsize import (
    EMPTY_CAR_HEADER_SIZE,
    EMPTY_RANGE_CAR_SIZE,
    LEAF_RANGE_CAR_OVERHEAD,
    to_car_size,
)
from dataset_worker.worker.jobs.pack.filehash import (
    FileHashes,
    HashingSink,
    hash_split_files,
    unhashed_split_files,
)
from dataset_worker.worker.jobs.pack.record import Piece, Recorded, finalised_paths, record_pack
from dataset_worker.worker.jobs.pack.spool import JobRange, PackSpool
from dataset_worker.worker.jobs.pieces import (
    NoContentError,
    PieceWriter,
    record_or_unpublish,
    recover_publications,
)
from dataset_worker.worker.jobs.rescan import queue_rescan
from dataset_worker.worker.runtime.context import JobContext

DATA_MIN_CONTENT = 65  # a data CAR of at most this many bytes holds nothing (ErrNoContent)
RANGE_PAGE = 1000  # ranges read per query while packing
# Tiny ranges read and framed per call: enough to make the per-call cost vanish, few enough that
# a cancellation (checked once per batch) is seen within milliseconds.
LEAF_BATCH = 256
LEAF_BATCH_BYTES = 4 << 20


class JobSize(NamedTuple):
    """The job's range count, data bytes (unknown lengths as 0) and CAR size estimate."""

    ranges: int
    data_bytes: int
    car_estimate: int


class _CancellableStream:
    """A range stream that checks for cancellation before every read (one read per MiB)."""

    def __init__(self, stream: RangeStream, ctx: JobContext) -> None:
        self._stream = stream
        self._ctx = ctx

    def readinto(self, buffer: memoryview, /) -> int | None:
        self._ctx.check_cancelled()
        return self._stream.readinto(buffer)

    def close(self) -> None:
        self._stream.close()


def run_pack(ctx: JobContext) -> None:
    """Pack the job's ranges into one data piece."""
    started = time.monotonic()
    with ctx.db.read() as session:
        setup = load_setup(session, ctx.attachment_id)
        serial_plans(session)
        size = job_size(session, ctx.job_id)
        previous = session.execute(
            select(Car.storage_id, Car.storage_path, Car.file_size).where(Car.job_id == ctx.job_id)
        ).one_or_none()
    outputs = setup.require_output()
    recover_publications(ctx.db, ctx.job_id, outputs)  # a killed run's unrecorded CAR
    if previous is not None and _already_stored(outputs, *previous):
        # An earlier run recorded everything but died before the job was marked complete
        # (perhaps while it re-read a split file to hash it: finish that).
        log_event(ctx.logger, "pack.already_recorded", job=ctx.job_id, path=previous[1])
        if setup.file_hash:
            hash_split_files(ctx, setup.source, unhashed_split_files(ctx))
        return
    if not size.ranges:
        raise NoContentError(f"no content to pack: job {ctx.job_id} has no file ranges")
    try:
        with PackSpool(keep_blocks=not setup.no_inline) as spool:
            recorded, piece = _pack(ctx, setup, outputs, size, spool)
            _after_commit(ctx, setup, outputs, recorded, piece, spool)
    except SourceChangedError as exc:
        if setup.auto_rescan:  # the rescan rebuilds this job around the current files
            queue_rescan(ctx, str(exc))
        raise
    log_event(
        ctx.logger,
        "pack.done",
        job=ctx.job_id,
        piece_cid=cid_to_str(piece.piece_cid),
        piece_size=piece.piece_size,
        car_size=piece.file_size,
        ranges=size.ranges,
        files=recorded.files,
        seconds=round(time.monotonic() - started, 3),
    )


def job_size(session: Session, job_id: int) -> JobSize:
    """Count and size up the job's ranges in the database: one aggregate for the ranges of at
    most one chunk (a job of tiny files has nothing else), then the few bigger ones one by one."""
    length = FileRange.length
    mine = FileRange.job_id == job_id
    count, data_bytes, small_estimate = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((length > 0, length), else_=0)), 0),
            func.coalesce(
                func.sum(
                    case(
                        (length == 0, EMPTY_RANGE_CAR_SIZE),
                        (length <= CHUNK_SIZE, length + LEAF_RANGE_CAR_OVERHEAD),
                        else_=0,
                    )
                ),
                0,
            ),
        ).where(mine)
    ).one()
    # int(): PostgreSQL's sum of BIGINT is NUMERIC, which arrives as a Decimal.
    estimate = EMPTY_CAR_HEADER_SIZE + int(small_estimate)
    for big in session.scalars(select(length).where(mine, length > CHUNK_SIZE)):
        estimate += to_car_size(big)
    return JobSize(count, int(data_bytes), estimate)


def iter_job_ranges(db: Database, job_id: int, page: int | None = None) -> Iterator[JobRange]:
    """The job's ranges with their files, in id order (the CAR's order), `page` (default
    RANGE_PAGE) per query, each in its own short read transaction (packing may take hours)."""
    page = page or RANGE_PAGE
    last = 0
    while True:
        with db.read() as session:
            serial_plans(session)
            # Core, not the ORM: plain tuples for up to a million ranges per job.
            rows = session.connection().execute(
                select(
                    FileRange.id,
                    FileRange.offset,
                    FileRange.length,
                    File.id,
                    File.path,
                    File.size,
                    File.last_modified_nano,
                    File.directory_id,
                    File.hash,
                )
                .join(File, File.id == FileRange.file_id)
                .where(FileRange.job_id == job_id, FileRange.id > last)
                .order_by(FileRange.id)
                .limit(page)
            )
            # all(): one fetchall, where iterating the result fetches a row per call (a tenth of
            # a tiny-file job's time went there).
            ranges = list(map(JobRange._make, rows.all()))
        yield from ranges
        if len(ranges) < page:
            return
        last = ranges[-1].range_id


def _already_stored(
    outputs: list[OutputTarget], storage_id: int | None, path: str, size: int
) -> bool:
    if not outputs:
        # Inline: the row and its car_blocks were recorded in one transaction, so it is whole.
        return storage_id is None and not path
    for target in outputs:
        if target.storage_id == storage_id and path:
            return target.storage.exists(path) == size
    return False


def _sources(
    ctx: JobContext, source: SourceStorage, ranges: Iterator[JobRange], hashes: FileHashes
) -> Iterator[RangeSource | LeafBatch]:
    """What the packer reads, keyed by the JobRanges themselves (the spool reads their fields):
    from a source that reads small ranges in one call, runs of ranges of at most one chunk that
    feed no running sha256 (every file of a tiny-file dataset) as `LeafBatch`es; every other
    range as a RangeSource, feeding its file's running sha256 when there is one. The packer asks
    for more only once what it has is in the sink, which is the order `hashes` needs (a batch's
    ranges never touch it again)."""
    small = source if isinstance(source, SmallRangeReader) else None
    batch: list[JobRange] = []
    batch_bytes = 0
    for r in ranges:
        digest = hashes.digest_for(r)
        if small is not None and digest is None and 0 <= r.length <= CHUNK_SIZE:
            batch.append(r)
            batch_bytes += r.length
            if len(batch) >= LEAF_BATCH or batch_bytes >= LEAF_BATCH_BYTES:
                yield _leaf_batch(ctx, small, batch)
                batch, batch_bytes = [], 0
            continue
        if batch and small is not None:
            yield _leaf_batch(ctx, small, batch)
            batch, batch_bytes = [], 0

        def open_range(r: JobRange = r) -> _CancellableStream:
            ctx.check_cancelled()
            stream = source.open_range(
                r.path, r.offset, size=r.file_size, mtime_ns=r.mtime_ns, hash=r.source_hash
            )
            return _CancellableStream(stream, ctx)

        yield RangeSource(r, r.offset, r.length, open_range, r.path, digest)
    if batch and small is not None:
        yield _leaf_batch(ctx, small, batch)


def _leaf_batch(ctx: JobContext, small: SmallRangeReader, batch: list[JobRange]) -> LeafBatch:
    """The packer's view of a run of tiny ranges, read in one call when it asks."""

    def read() -> tuple[bytes, list[int]]:
        ctx.check_cancelled()
        return small.read_ranges(
            [SmallRange(r.path, r.offset, r.length, r.file_size, r.mtime_ns) for r in batch]
        )

    def locate(i: int) -> tuple[str, int]:
        return batch[i].path, batch[i].offset

    return LeafBatch(batch, [r.length for r in batch], read, locate)


def _pack(
    ctx: JobContext,
    setup: AttachmentSetup,
    outputs: list[OutputTarget],
    size: JobSize,
    spool: PackSpool,
) -> tuple[Recorded, Piece]:
    # Singularity pads (a temp file, then literal zeros) only when the data is under half the
    # minimum piece; bigger inputs stream without the padding check (docs/formats.md#piece-size-and-padding).
    pad = size.data_bytes < setup.min_piece_size // 2
    needed = size.car_estimate
    if pad:
        needed = max(needed, setup.min_piece_size * 127 // 128)
    target = choose_output([(o, o.storage) for o in outputs], needed)[0] if outputs else None
    tag = f"pack{ctx.job_id}"
    removed = target.storage.remove_temps(tag) if target is not None else 0
    if removed:
        log_event(ctx.logger, "pack.removed_stale_temp", job=ctx.job_id, count=removed)
    with PieceWriter(target, tag) as writer:
        hashes = FileHashes(setup.file_hash)
        sources = _sources(ctx, setup.source, iter_job_ranges(ctx.db, ctx.job_id), hashes)
        sink = HashingSink(spool, hashes)
        write_ranges(sources, writer.car, sink, read_ahead=ctx.read_ahead)
        if spool.range_count != size.ranges:
            raise RuntimeError(
                f"job {ctx.job_id} had {size.ranges} ranges but {spool.range_count} were packed "
                "(its ranges changed while it was packed)"
            )
        ctx.check_cancelled()
        sealed = writer.seal(setup.min_piece_size, pad=pad, min_content=DATA_MIN_CONTENT)
        storage_path = writer.publish(ctx.db, ctx.job_id)
    storage_id = target.storage_id if target is not None else None
    piece = Piece(
        sealed.piece_cid,
        sealed.piece_size,
        sealed.root_cid,
        sealed.file_size,
        storage_id,
        storage_path,
    )

    def record(session: Session) -> Recorded:
        recorded = record_pack(session, ctx, setup, spool, piece)
        if not (setup.file_hash and recorded.unhashed_split_ids):
            # Nothing left that can fail the job (_after_commit's clean-ups are best-effort):
            # complete it here, without a write transaction of its own (db/queue/handover.py).
            ctx.finish(session)
        return recorded

    output = target.storage if target is not None else None
    recorded = record_or_unpublish(ctx.db, output, writer.publication, record)
    return recorded, piece


def _after_commit(
    ctx: JobContext,
    setup: AttachmentSetup,
    outputs: list[OutputTarget],
    recorded: Recorded,
    piece: Piece,
    spool: PackSpool,
) -> None:
    """Once the piece is recorded: hash the split files finalised here that could not be hashed
    while packing; then best-effort clean-ups: an earlier run's file under another name, and
    (delete-after-export) the source files finalised here (after hashing: it reads them)."""
    if setup.file_hash and recorded.unhashed_split_ids:
        hash_split_files(ctx, setup.source, recorded.unhashed_split_ids)
    if recorded.replaced is not None:
        old_storage, old_path = recorded.replaced
        if old_path and (old_storage, old_path) != (piece.storage_id, piece.storage_path):
            _remove_if_unused(ctx, outputs, old_storage, old_path)
    if setup.delete_after_export:
        for path in finalised_paths(spool, recorded):
            try:
                setup.source.remove(path)
            except OSError as exc:
                log_event(
                    ctx.logger,
                    "pack.delete_source_failed",
                    logging.WARNING,
                    job=ctx.job_id,
                    path=path,
                    error=str(exc),
                )


def _remove_if_unused(
    ctx: JobContext, outputs: list[OutputTarget], storage_id: int | None, path: str
) -> None:
    with ctx.db.read() as session:
        used = session.scalar(
            select(Car.id).where(Car.storage_id == storage_id, Car.storage_path == path).limit(1)
        )
    if used is not None:
        return
    for target in outputs:
        if target.storage_id == storage_id:
            with contextlib.suppress(OSError):
                target.storage.remove(path)
