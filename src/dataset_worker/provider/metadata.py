"""What a piece holds: its `cars` row, its block count, and the file ranges packed into it.

The ranges are paged by `file_ranges.id` (a cursor), so a piece of a million small files is
listed a page at a time. The block count comes from `car_blocks` when the preparation recorded
them, else from walking the CAR file's framing (seeks only; remembered per CAR row).
"""

from __future__ import annotations

import os
import threading
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from sqlalchemy import select

from dataset_worker.content.carscan import CarFramingError, iter_sections, read_roots
from dataset_worker.content.cid import cid_to_str
from dataset_worker.content.piececid import PieceRef
from dataset_worker.content.piececid2 import InvalidPieceCidV2, piece_cid_v2_from_v1_bytes
from dataset_worker.db.blockrows import block_rows
from dataset_worker.db.filecid import resolve
from dataset_worker.db.models import Car, File, FileRange
from dataset_worker.provider.pieces import (
    REMOTE_STORAGE_TYPES,
    CheckedPieceReader,
    PieceCatalog,
    PieceNotFound,
    PieceReader,
    PieceRecord,
    PieceUnavailable,
)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
_BLOCK_COUNTS_KEPT = 4096


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RangeView(_Model):
    """One file range packed into the piece."""

    id: int = Field(description="The range's id: pass it as `cursor` to get the next page.")
    path: str = Field(description="The file's path in the source, `/`-separated.")
    file_size: int = Field(description="The whole file's size (-1 while unknown).")
    file_cid: str | None = Field(
        description="The whole file's CID, once all its ranges are packed."
    )
    offset: int = Field(description="Where the range starts in the file.")
    length: int = Field(description="Bytes in the range.")
    cid: str | None = Field(description="The range's root CID in this piece.")


class PieceMetadata(_Model):
    """A piece and what it holds."""

    piece_cid: str = Field(description="The v1 piece CID (whichever version was asked for).")
    piece_cid_v2: str = Field(
        description="The FRC-0069 v2 piece CID: binds the payload size, which is `fileSize` "
        '("" for a row whose sizes cannot make one).'
    )
    piece_size: int = Field(description="The padded piece size (a power of two).")
    piece_type: str = Field(description='"data" (a pack job) or "dag" (directory nodes).')
    root_cid: str = Field(description="The CAR header's root.")
    file_size: int = Field(description="CAR bytes, zero padding included: what GET /piece sends.")
    storage_path: str
    created_at: datetime
    preparation_id: int | None
    num_of_files: int = Field(description="Files completed by this piece.")
    available: bool = Field(description="The CAR file exists with the recorded size.")
    problem: str | None = Field(description="Why it is not available, naming the file.")
    block_count: int | None = Field(
        description="Blocks in the CAR (null when the CAR file is unavailable and the "
        "preparation kept no block index)."
    )
    ranges: list[RangeView] = Field(description="File ranges in this piece, in packing order.")
    next_cursor: int | None = Field(
        description="Pass as `cursor` for the next page of ranges; null on the last page."
    )


class _BlockCounts:
    """Block counts of CAR files, by `cars` id (a CAR file never changes once published)."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._lock = threading.Lock()

    def get(self, car_id: int) -> int | None:
        with self._lock:
            return self._counts.get(car_id)

    def put(self, car_id: int, count: int) -> None:
        with self._lock:
            if len(self._counts) >= _BLOCK_COUNTS_KEPT:
                self._counts.pop(next(iter(self._counts)))
            self._counts[car_id] = count


_counts = _BlockCounts()


def piece_metadata(
    catalog: PieceCatalog, piece: PieceRef, *, limit: int, cursor: int | None
) -> PieceMetadata:
    """The metadata of a piece (the row that GET /piece serves, else the oldest row); a v2
    reference names only the rows of its payload and piece sizes."""
    records = piece.matching(catalog.records(piece.v1))
    if not records:
        raise PieceNotFound("no piece with this CID is known here")
    chosen, reader, problem = records[0], None, None
    for record in records:
        try:
            reader = catalog.source_of(record).open()
            remote = record.storage_type in REMOTE_STORAGE_TYPES
            if remote and isinstance(reader, CheckedPieceReader):
                _check_reader(reader)  # one HEAD/stat: is the CAR object there, with its size?
        except PieceUnavailable as exc:
            problem = problem or str(exc)
            reader = None
            continue
        chosen, problem = record, None
        break
    try:
        blocks = _block_count(catalog, chosen, reader)
    finally:
        if reader is not None:
            reader.close()
    ranges, next_cursor = _ranges(catalog, chosen, limit, cursor)
    return PieceMetadata(
        piece_cid=cid_to_str(chosen.piece_cid),
        piece_cid_v2=_piece_cid_v2(chosen),
        piece_size=chosen.piece_size,
        piece_type=chosen.piece_type,
        root_cid=cid_to_str(chosen.root_cid),
        file_size=chosen.file_size,
        storage_path=chosen.storage_path,
        created_at=chosen.created_at,
        preparation_id=chosen.preparation_id,
        num_of_files=chosen.num_of_files,
        available=reader is not None,
        problem=problem,
        block_count=blocks,
        ranges=ranges,
        next_cursor=next_cursor,
    )


def _piece_cid_v2(record: PieceRecord) -> str:
    """The row's v2 piece CID (payload: the `file_size` bytes served), "" if its sizes cannot
    make one."""
    try:
        return piece_cid_v2_from_v1_bytes(record.piece_cid, record.file_size, record.piece_size)
    except InvalidPieceCidV2:
        return ""


def _check_reader(reader: CheckedPieceReader) -> None:
    try:
        reader.check_spans([])
    except BaseException:
        reader.close()
        raise


def _block_count(
    catalog: PieceCatalog, record: PieceRecord, reader: PieceReader | None
) -> int | None:
    cached = _counts.get(record.car_id)
    if cached is not None:
        return cached
    with catalog.db.read() as session:
        indexed = block_rows(session, Car.id == record.car_id).get(record.car_id)
    count: int | None = indexed or None
    fd = reader.fileno() if reader is not None else None
    if count is None and fd is not None:
        count = _count_sections(fd, record.file_size)
    if count is not None:
        _counts.put(record.car_id, count)
    return count


def _count_sections(fd: int, size: int) -> int | None:
    """Blocks in the CAR open at `fd` (a duplicate descriptor keeps the caller's untouched)."""
    with os.fdopen(os.dup(fd), "rb") as stream:
        stream.seek(0)
        try:
            read_roots(stream)
            return sum(1 for _ in iter_sections(stream, size))
        except CarFramingError:
            return None


def _ranges(
    catalog: PieceCatalog, record: PieceRecord, limit: int, cursor: int | None
) -> tuple[list[RangeView], int | None]:
    if record.job_id is None:  # a DAG piece holds directory nodes, no file ranges
        return [], None
    query = (
        select(FileRange, File.path, File.size, File.cid)
        .join(File, File.id == FileRange.file_id)
        .where(FileRange.job_id == record.job_id)
        .order_by(FileRange.id)
        .limit(limit + 1)
    )
    if cursor is not None:
        query = query.where(FileRange.id > cursor)
    with catalog.db.read() as session:
        rows = session.execute(query).all()
    views = [
        RangeView(
            id=file_range.id,
            path=path,
            file_size=size,
            file_cid=_cid_text(resolve(file_cid, file_range.cid)),
            offset=file_range.offset,
            length=file_range.length,
            cid=_cid_text(file_range.cid),
        )
        for file_range, path, size, file_cid in rows[:limit]
    ]
    next_cursor = views[-1].id if len(rows) > limit else None
    return views, next_cursor


def _cid_text(cid: bytes | None) -> str | None:
    return cid_to_str(cid) if cid else None
