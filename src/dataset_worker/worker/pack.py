"""The pack job (spec §5): the job's ranges → one CAR file named `<pieceCID>.car` + its rows.

Flow: load the ranges (in id order) → pick an output with room → stream every range's blocks
into a temporary CAR while commP hashes the same bytes → seal (commP, piece size, padding of
small CARs) → rename into place → record everything in one ownership-checked transaction.
Any failure, cancellation included, removes the temporary file; nothing is recorded.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataset_worker.content.cid import cid_to_str
from dataset_worker.content.packer import RangeSource, pack_ranges
from dataset_worker.db.models import Car, File, FileRange
from dataset_worker.logs import log_event
from dataset_worker.storage import RangeStream, SourceStorage, choose_output
from dataset_worker.worker.attachment import AttachmentSetup, OutputTarget, load_setup
from dataset_worker.worker.batching import estimate_car_size
from dataset_worker.worker.context import JobContext
from dataset_worker.worker.pack_record import JobRange, Piece, Recorded, record_pack
from dataset_worker.worker.piece_writer import NoContentError, PieceWriter, record_or_unpublish

DATA_MIN_CONTENT = 65  # a data CAR of at most this many bytes holds nothing (ErrNoContent)


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
        ranges = load_job_ranges(session, ctx.job_id)
        previous = session.execute(
            select(Car.storage_id, Car.storage_path, Car.file_size).where(Car.job_id == ctx.job_id)
        ).one_or_none()
    outputs = setup.require_output()
    if previous is not None and _already_stored(outputs, *previous):
        # An earlier run recorded everything but died before the job was marked complete.
        log_event(ctx.logger, "pack.already_recorded", job=ctx.job_id, path=previous[1])
        return
    if not ranges:
        raise NoContentError(f"no content to pack: job {ctx.job_id} has no file ranges")
    recorded, piece = _pack(ctx, setup, outputs, ranges)
    _after_commit(ctx, setup, outputs, recorded, piece)
    log_event(
        ctx.logger,
        "pack.done",
        job=ctx.job_id,
        piece_cid=cid_to_str(piece.piece_cid),
        piece_size=piece.piece_size,
        car_size=piece.file_size,
        ranges=len(ranges),
        files=len(recorded.finalised_paths),
        seconds=round(time.monotonic() - started, 3),
    )


def load_job_ranges(session: Session, job_id: int) -> list[JobRange]:
    """The job's ranges with their files, in id order (the CAR's order)."""
    rows = session.execute(
        select(
            FileRange.id,
            FileRange.offset,
            FileRange.length,
            File.id,
            File.path,
            File.size,
            File.last_modified_nano,
            File.directory_id,
        )
        .join(File, File.id == FileRange.file_id)
        .where(FileRange.job_id == job_id)
        .order_by(FileRange.id)
    )
    return [JobRange(*row) for row in rows]


def _already_stored(
    outputs: list[OutputTarget], storage_id: int | None, path: str, size: int
) -> bool:
    for target in outputs:
        if target.storage_id == storage_id and path:
            return target.storage.exists(path) == size
    return False


def _sources(
    ctx: JobContext, source: SourceStorage, ranges: list[JobRange]
) -> Iterator[RangeSource]:
    for r in ranges:

        def open_range(r: JobRange = r) -> _CancellableStream:
            ctx.check_cancelled()
            stream = source.open_range(r.path, r.offset, size=r.file_size, mtime_ns=r.mtime_ns)
            return _CancellableStream(stream, ctx)

        yield RangeSource(r.range_id, r.offset, r.length, open_range, label=r.path)


def _pack(
    ctx: JobContext, setup: AttachmentSetup, outputs: list[OutputTarget], ranges: list[JobRange]
) -> tuple[Recorded, Piece]:
    data_bytes = sum(max(r.length, 0) for r in ranges)
    # Singularity pads (a temp file, then literal zeros) only when the data is under half the
    # minimum piece; bigger inputs stream without the padding check (spec §5.7).
    pad = data_bytes < setup.min_piece_size // 2
    needed = estimate_car_size([r.length for r in ranges])
    if pad:
        needed = max(needed, setup.min_piece_size * 127 // 128)
    target = choose_output([(o, o.storage) for o in outputs], needed)[0]
    tag = f"pack{ctx.job_id}"
    removed = target.storage.remove_temps(tag)
    if removed:
        log_event(ctx.logger, "pack.removed_stale_temp", job=ctx.job_id, count=removed)
    with PieceWriter(target, tag) as writer:
        packed = pack_ranges(
            _sources(ctx, setup.source, ranges), writer.car, read_ahead=ctx.read_ahead
        )
        ctx.check_cancelled()
        sealed = writer.seal(setup.min_piece_size, pad=pad, min_content=DATA_MIN_CONTENT)
        storage_path = writer.publish()
    piece = Piece(
        sealed.piece_cid,
        sealed.piece_size,
        sealed.root_cid,
        sealed.file_size,
        target.storage_id,
        storage_path,
    )

    def record(session: Session) -> Recorded:
        return record_pack(session, ctx, setup, ranges, packed, piece)

    recorded = record_or_unpublish(ctx.db, target.storage, target.storage_id, storage_path, record)
    return recorded, piece


def _after_commit(
    ctx: JobContext,
    setup: AttachmentSetup,
    outputs: list[OutputTarget],
    recorded: Recorded,
    piece: Piece,
) -> None:
    """Best-effort clean-ups once the piece is recorded: an earlier run's file under another
    name, and (delete-after-export) the source files finalised here."""
    if recorded.replaced is not None:
        old_storage, old_path = recorded.replaced
        if old_path and (old_storage, old_path) != (piece.storage_id, piece.storage_path):
            _remove_if_unused(ctx, outputs, old_storage, old_path)
    if setup.delete_after_export:
        for path in recorded.finalised_paths:
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
