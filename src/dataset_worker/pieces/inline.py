"""Rebuilding the CAR bytes of an inline piece from its block rows and the source files.

An inline preparation writes no CAR file. Its bytes are: the CAR header (made again from
`cars.root_cid`), then every block in `car_offset` order as varint + CID + data (the data is
`raw_block` for nodes, or read from the source file at `file_offset` for leaves; a range packed
as one leaf is its own block row), then zeros up to `cars.file_size` (the padding of small
pieces). These are the bytes the same preparation with an output folder writes, so the piece
CID is the same.

Never wrong bytes: every block's data is hashed and compared with its CID as it is produced, the
rows must chain up (each block starts where the previous one ended) and must end where the piece
says. Anything else raises an `InlinePieceError` instead of returning bytes.

Shared by the content provider and `verify`: imports only `content/`, `db/` and `storage/`.
Read-only: it only ever reads the database.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataset_worker.content.varint import decode_uvarint, encode_uvarint
from dataset_worker.db import Database
from dataset_worker.db.models import Car, CarBlock, File, FileRange, SourceAttachment, Storage
from dataset_worker.db.nodebytes import CorruptNode, node_bytes
from dataset_worker.storage import (
    RangeStream,
    SourceChangedError,
    SourceStorage,
    StorageError,
    open_source,
)

BLOCK_PAGE = 2000  # car_blocks rows per query
READ_RUN = (8 << 20) + (8 << 10)  # per segment: 8 MiB leaves with their CIDs and varints
READ_AHEAD = 2  # segments built ahead of a download
BUFFER_SIZE = READ_RUN + (2 << 20)  # a segment's buffer: a run, plus one block past it
SHA2_256 = 0x12


def car_header(root_cid: bytes) -> bytes:
    """The CARv1 header for one root, as the writer makes it: uvarint(len(H)) + H with
    H = DAG-CBOR {"roots": [root], "version": 1}.

    Encoded here rather than imported from `content.car` so that `verify`, which rebuilds
    inline pieces with this module, shares no code with the writer it checks.
    """
    link = b"\x00" + root_cid  # DAG-CBOR puts the multibase-identity prefix before the CID
    if len(link) < 24:
        length = bytes((0x40 | len(link),))
    elif len(link) < 256:
        length = b"\x58" + bytes((len(link),))
    else:
        length = b"\x59" + len(link).to_bytes(2, "big")
    body = b"\xa2\x65roots\x81\xd8\x2a" + length + link + b"\x67version\x01"
    return encode_uvarint(len(body)) + body


class InlinePieceError(Exception):
    """An inline piece cannot be rebuilt as recorded; `file` names the source file involved."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class SourceFileChanged(InlinePieceError):
    """A source file is gone or differs from what the scan recorded (size, mtime)."""


class SourceBytesMismatch(InlinePieceError):
    """Bytes read from a source file do not hash to their block's CID (rewritten in place)."""


class BlocksInconsistent(InlinePieceError):
    """The `car_blocks` rows do not describe a whole CAR (missing, overlapping or orphaned)."""


@dataclass(frozen=True, slots=True)
class InlineCar:
    """What rebuilding needs of a `cars` row."""

    car_id: int
    root_cid: bytes
    piece_size: int
    file_size: int  # CAR bytes, padding included

    @property
    def padded_size(self) -> int:
        """The size a padded CAR has: piece size * 127/128."""
        return self.piece_size * 127 // 128


@dataclass(frozen=True, slots=True)
class BlockRow:
    """One `car_blocks` row with its source file's recorded identity (leaves only)."""

    car_offset: int
    length: int  # varint + CID + data
    varint: bytes
    cid: bytes
    raw_block: bytes | None
    file_offset: int | None
    file_id: int | None
    path: str | None
    size: int | None
    mtime_ns: int | None
    version: str | None

    @property
    def end(self) -> int:
        """CAR offset just after the block."""
        return self.car_offset + self.length

    @property
    def data_offset(self) -> int:
        """CAR offset of the block's data."""
        return self.car_offset + len(self.varint) + len(self.cid)

    @property
    def data_length(self) -> int:
        """Bytes of block data."""
        return self.length - len(self.varint) - len(self.cid)

    @property
    def from_source(self) -> bool:
        """Whether the data is read from a source file (a leaf) rather than stored."""
        return self.file_id is not None or (self.raw_block is None and self.data_length > 0)


def load_inline_car(db: Database, car_id: int) -> InlineCar:
    """The `cars` row of `car_id` as an InlineCar; BlocksInconsistent if it is gone."""
    with db.read() as session:
        row = session.execute(
            select(Car.root_cid, Car.piece_size, Car.file_size).where(Car.id == car_id)
        ).one_or_none()
    if row is None:
        raise BlocksInconsistent(f"piece row {car_id} no longer exists")
    return InlineCar(car_id, *row)


def source_of_car(db: Database, car_id: int) -> SourceStorage:
    """The source storage an inline piece's leaves are read from; InlinePieceError if gone."""
    with db.read() as session:
        row = session.execute(
            select(Storage.type, Storage.path, Storage.config)
            .join(SourceAttachment, SourceAttachment.storage_id == Storage.id)
            .join(Car, Car.attachment_id == SourceAttachment.id)
            .where(Car.id == car_id)
        ).one_or_none()
    if row is None:
        raise InlinePieceError(
            "the source this inline piece is rebuilt from is no longer attached to its preparation"
        )
    try:
        return open_source(row[0], row[1], row[2])
    except StorageError as exc:
        raise InlinePieceError(f"the source of this inline piece cannot be opened: {exc}") from None


def block_rows(db: Database, car_id: int, start: int, page: int = BLOCK_PAGE) -> Iterator[BlockRow]:
    """The blocks from the one holding CAR offset `start` (the first block if `start` is in the
    header) to the end, in `car_offset` order, `page` rows per query, each query in its own
    short read transaction (a transfer may take hours).

    Two kinds of row are merged: `car_blocks` rows, and the ranges of the piece's pack job that
    were packed as one leaf, which keep their offset instead (docs/architecture.md#one-leaf-ranges).
    """
    with db.read() as session:
        job_id = session.scalar(select(Car.job_id).where(Car.id == car_id))
        firsts = [
            session.scalar(
                select(func.max(CarBlock.car_offset)).where(
                    CarBlock.car_id == car_id, CarBlock.car_offset <= start
                )
            )
        ]
        if job_id is not None:
            firsts.append(
                session.scalar(
                    select(func.max(FileRange.car_offset)).where(
                        FileRange.job_id == job_id, FileRange.car_offset <= start
                    )
                )
            )
    first = max((offset for offset in firsts if offset is not None), default=0)
    streams = [_paged(db, partial(_block_page, car_id, first), page)]
    if job_id is not None:
        streams.append(_paged(db, partial(_leaf_page, job_id, first), page))
    return heapq.merge(*streams, key=lambda row: row.car_offset)


# (session, after, page): the next page of rows after the key the previous page ended with
# (None: the first page), and the key of its last row.
PageQuery = Callable[[Session, int | None, int], tuple[list[BlockRow], int | None]]


def _paged(db: Database, query: PageQuery, page: int) -> Iterator[BlockRow]:
    """Every row `query` gives, each page in its own read transaction."""
    after: int | None = None
    while True:
        with db.read() as session:
            rows, after = query(session, after, page)
        yield from rows
        if len(rows) < page:
            return


def _block_page(
    car_id: int, first: int, session: Session, after: int | None, page: int
) -> tuple[list[BlockRow], int | None]:
    """`car_blocks` rows of one piece from CAR offset `first`, keyed by their offset."""
    position = CarBlock.car_offset >= first if after is None else CarBlock.car_offset > after
    query = (
        select(
            CarBlock.car_offset,
            CarBlock.car_block_length,
            CarBlock.varint,
            CarBlock.cid,
            CarBlock.raw_block,
            CarBlock.raw_block_zlib,
            CarBlock.file_offset,
            CarBlock.file_id,
            File.path,
            File.size,
            File.last_modified_nano,
            File.hash,
        )
        .outerjoin(File, File.id == CarBlock.file_id)
        .where(CarBlock.car_id == car_id, position)
        .order_by(CarBlock.car_offset)
        .limit(page)
    )
    rows = [
        BlockRow(offset, length, varint, cid, _node(offset, raw, zipped), *rest)
        for offset, length, varint, cid, raw, zipped, *rest in session.execute(query)
    ]
    return rows, rows[-1].car_offset if rows else None


def _node(car_offset: int, raw_block: bytes | None, raw_block_zlib: bytes | None) -> bytes | None:
    try:
        return node_bytes(raw_block, raw_block_zlib)
    except CorruptNode as exc:
        raise BlocksInconsistent(f"the stored block at CAR offset {car_offset}: {exc}") from None


def _leaf_page(
    job_id: int, first: int, session: Session, after: int | None, page: int
) -> tuple[list[BlockRow], int | None]:
    """The one-leaf ranges of one pack job from CAR offset `first`, as block rows (the block
    is the range's CID and bytes, framed as the CAR writer framed it), keyed by range id: a
    job packs its ranges in id order, so that is their CAR order (index `(job_id, id)`)."""
    position = FileRange.car_offset >= first if after is None else FileRange.id > after
    query = (
        select(
            FileRange.id,
            FileRange.car_offset,
            FileRange.length,
            FileRange.cid,
            FileRange.offset,
            FileRange.file_id,
            File.path,
            File.size,
            File.last_modified_nano,
            File.hash,
        )
        .join(File, File.id == FileRange.file_id)
        .where(FileRange.job_id == job_id, FileRange.car_offset.is_not(None), position)
        .order_by(FileRange.id)
        .limit(page)
    )
    rows, last = [], None
    for (
        range_id,
        car_offset,
        length,
        cid,
        offset,
        file_id,
        path,
        size,
        mtime,
        version,
    ) in session.execute(query):
        assert car_offset is not None  # the query asks for set ones only
        cid = cid or b""  # a packed range always has one; a missing one fails the hash check
        varint = encode_uvarint(len(cid) + length)
        total = len(varint) + len(cid) + length
        row = (car_offset, total, varint, cid, None, offset, file_id, path, size, mtime, version)
        rows.append(BlockRow(*row))
        last = range_id
    return rows, last


def sha256_digest_of(cid: bytes) -> bytes:
    """The sha2-256 digest a CID names; BlocksInconsistent for any other hash function."""
    if len(cid) == 34 and cid[:2] == b"\x12\x20":  # CIDv0
        return cid[2:]
    try:
        _, pos = decode_uvarint(cid, 0)  # version
        _, pos = decode_uvarint(cid, pos)  # codec
        code, pos = decode_uvarint(cid, pos)
        length, pos = decode_uvarint(cid, pos)
    except ValueError:
        raise BlocksInconsistent(f"a block's CID {cid.hex()} cannot be decoded") from None
    if code != SHA2_256 or length != 32 or len(cid) != pos + 32:
        raise BlocksInconsistent(f"a block's CID {cid.hex()} is not a sha2-256 CID")
    return cid[pos:]


def check_source_files(source: SourceStorage, rows: Iterable[BlockRow]) -> int:
    """Check once each source file these leaves are read from against the scan (exists, same
    size and mtime, and the same ETag for an S3 object); SourceFileChanged naming the first that
    differs. Returns files checked."""
    seen: set[int] = set()
    for row in rows:
        if row.file_id is None or row.data_length == 0 or row.file_id in seen:
            continue
        seen.add(row.file_id)
        # Opened at its end: an S3 object is then checked by one HEAD, with no GET started.
        end = row.size if row.size is not None and row.size > 0 else 0
        _open_checked(source, row, end).close()
    return len(seen)


def _open_checked(source: SourceStorage, row: BlockRow, offset: int) -> RangeStream:
    if row.path is None or row.size is None or row.mtime_ns is None:
        raise BlocksInconsistent(
            f"the file of the block at CAR offset {row.car_offset} is no longer recorded"
        )
    try:
        return source.open_range(
            row.path, offset, size=row.size, mtime_ns=row.mtime_ns, hash=row.version or ""
        )
    except SourceChangedError as exc:
        raise SourceFileChanged(str(exc), row.path) from None
    except (OSError, StorageError) as exc:
        raise SourceFileChanged(f"source file {row.path} cannot be read: {exc}", row.path) from None


Segment = tuple[int, memoryview]  # CAR offset of the first byte, the bytes


class _ReadAhead:
    """Segments from a generator; from the second one on, up to READ_AHEAD more are built in a
    helper thread while the caller sends the current one (reading and hashing release the GIL).
    The first is built in the caller's thread, so a short ranged read costs only its segment."""

    def __init__(self, segments: Iterator[Segment]) -> None:
        self._segments = segments
        self._futures: deque[Future[Segment | None]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._taken = 0

    def next(self) -> Segment | None:
        """The next segment (None at the end); re-raises what building it raised."""
        if self._futures:
            segment = self._futures.popleft().result()
        else:
            segment = next(self._segments, None)
        self._taken += 1
        if segment is not None and self._taken >= 2:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="inline-read-ahead")
            # One worker thread: the generator is only ever advanced by one thread at a time.
            while len(self._futures) < READ_AHEAD:
                self._futures.append(self._pool.submit(next, self._segments, None))
        return segment

    def close(self) -> None:
        """Stop reading ahead (a segment being built is finished, then dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._futures.clear()


class InlinePieceReader:
    """Positional reads of an inline piece, rebuilt a segment (a run of blocks) at a time.

    Reads that continue where the last one ended (a download) go on from the segments at hand,
    with the next one built ahead; any other offset starts again from the block holding it.
    Not thread-safe: one reader serves one transfer.
    """

    def __init__(
        self, db: Database, car: InlineCar, source: SourceStorage, *, page: int = BLOCK_PAGE
    ) -> None:
        self.db = db
        self.car = car
        self.source = source
        self.page = page
        self.header = car_header(car.root_cid)
        self._segments: deque[Segment] = deque()
        # Buffers of consumed segments, for the next ones (taken only by the building thread).
        self._free: deque[bytearray] = deque(maxlen=READ_AHEAD + 2)
        self._end = 0  # CAR offset just after the last segment held
        self._ahead: _ReadAhead | None = None

    @property
    def size(self) -> int:
        """Bytes in the piece, padding included."""
        return self.car.file_size

    def check(self, spans: Iterable[tuple[int, int]]) -> int:
        """Check the source files the (offset, length) spans need; SourceFileChanged if one
        differs from the scan. Returns how many files were checked."""
        needed: list[BlockRow] = []
        for offset, length in spans:
            end = min(offset + length, self.size)
            for row in block_rows(self.db, self.car.car_id, offset, self.page):
                if row.car_offset >= end:
                    break
                if row.data_offset + row.data_length > offset:
                    needed.append(row)
        return check_source_files(self.source, needed)

    def pread(self, offset: int, length: int) -> bytes:
        """The piece's bytes [offset, offset + length), cut at its end."""
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        first = self._segments[0][0] if self._segments else self._end
        if self._ahead is None or not first <= offset <= self._end:
            self._seek(offset)
        assert self._ahead is not None
        while self._end < end:
            try:
                segment = self._ahead.next()
            except BaseException:
                self.close()  # the next read starts again rather than at a broken state
                raise
            if segment is None:
                raise BlocksInconsistent(f"piece {self.car.car_id} ended before {end} bytes")
            self._segments.append(segment)
            self._end = segment[0] + len(segment[1])
        while self._segments and self._segments[0][0] + len(self._segments[0][1]) <= offset:
            _, done = self._segments.popleft()
            if isinstance(done.obj, bytearray) and len(done.obj) == BUFFER_SIZE:
                self._free.append(done.obj)  # reads return copies: nothing else refers to it
        parts: list[memoryview] = []
        for start, data in self._segments:
            if start >= end:
                break
            parts.append(data[max(offset - start, 0) : end - start])
        return parts[0].tobytes() if len(parts) == 1 else b"".join(parts)

    def iter_chunks(self, chunk: int = 4 << 20) -> Iterator[bytes]:
        """The whole piece, in order, `chunk` bytes at a time."""
        for offset in range(0, self.size, chunk):
            yield self.pread(offset, chunk)

    def close(self) -> None:
        """Drop the segments and stop reading ahead."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None
        self._segments.clear()

    def _seek(self, offset: int) -> None:
        self.close()
        self._ahead = _ReadAhead(self._build_segments(offset))
        self._end = 0

    def _build_segments(self, start: int) -> Iterator[Segment]:
        """Segments from the block holding `start` (from 0 inside the header) to the end."""
        rows = block_rows(self.db, self.car.car_id, start, self.page)
        pending = next(rows, None)
        if pending is None or start < len(self.header):
            position = len(self.header)
            yield 0, memoryview(self.header)
        else:
            position = pending.car_offset
        while pending is not None:
            run, total = [pending], pending.length
            pending = None
            for row in rows:
                if total + row.length > READ_RUN:
                    pending = row
                    break
                run.append(row)
                total += row.length
            yield position, self._build(run, position, total)
            position = run[-1].end
            if position > self.size:
                raise BlocksInconsistent(
                    f"piece {self.car.car_id} has blocks past its recorded size {self.size}"
                )
        self._check_content_end(position)
        while position < self.size:
            count = min(READ_RUN, self.size - position)
            yield position, _ZEROS[:count]
            position += count

    def _build(self, run: list[BlockRow], position: int, total: int) -> memoryview:
        """The CAR bytes of consecutive blocks: stored data copied, leaves read from their
        files straight into place (one open per file run); every block checked by its CID."""
        # A recycled buffer: a fresh 8 MiB one would be zeroed and page-faulted in every time.
        free = self._free
        out = free.pop() if free and total <= BUFFER_SIZE else bytearray(max(total, BUFFER_SIZE))
        view = memoryview(out)[:total]
        reading = _FileRun(self.source)
        leaves: list[tuple[BlockRow, Future[bytes]]] = []
        hashers = _hashers()
        try:
            pos = 0
            for row in run:
                if row.car_offset != position + pos:
                    raise BlocksInconsistent(
                        f"the block rows of piece {self.car.car_id} do not chain up: a block "
                        f"starts at CAR offset {row.car_offset}, the previous one ended at "
                        f"{position + pos}"
                    )
                _check_framing(row)
                head = len(row.varint) + len(row.cid)
                view[pos : pos + len(row.varint)] = row.varint
                view[pos + len(row.varint) : pos + head] = row.cid
                data = view[pos + head : pos + row.length]
                if row.from_source:
                    reading.read_into(row, data)
                    # Hashed while the next leaves are read.
                    leaves.append((row, hashers.submit(_digest, data)))
                else:
                    _put_stored(row, data)
                pos += row.length
        finally:
            reading.close()
        _check_leaves(leaves)
        return view

    def _check_content_end(self, position: int) -> None:
        """Blocks must end exactly at the CAR size, or below it when the piece is padded."""
        if position == self.size:
            return
        if position < self.size and self.size == self.car.padded_size:
            return
        raise BlocksInconsistent(
            f"the block rows of piece {self.car.car_id} end at CAR offset {position}, but the "
            f"piece is {self.size} bytes: rows are missing"
        )


_ZEROS = memoryview(bytes(READ_RUN))


class _FileRun:
    """The source file being read: kept open while the next leaf continues where it stopped."""

    def __init__(self, source: SourceStorage) -> None:
        self._source = source
        self._stream: RangeStream | None = None
        self._file_id: int | None = None
        self._next_offset = -1

    def read_into(self, row: BlockRow, target: memoryview) -> None:
        """Fill `target` with the leaf's bytes from its file."""
        if not len(target):
            return
        if row.file_offset is None:
            raise BlocksInconsistent(f"the leaf at CAR offset {row.car_offset} has no file offset")
        if (
            self._stream is None
            or row.file_id != self._file_id
            or (row.file_offset != self._next_offset)
        ):
            self.close()
            self._stream = _open_checked(self._source, row, row.file_offset)
            self._file_id = row.file_id
        filled = 0
        try:
            while filled < len(target):
                got = self._stream.readinto(target[filled:])
                if not got:
                    raise SourceBytesMismatch(
                        f"source file {row.path} ended early: {len(target) - filled} bytes of "
                        f"the block at file offset {row.file_offset} are missing",
                        row.path,
                    )
                filled += got
        except OSError as exc:
            raise SourceFileChanged(
                f"source file {row.path} cannot be read: {exc}", row.path
            ) from None
        self._next_offset = row.file_offset + filled

    def close(self) -> None:
        """Close the open file, if any."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _check_framing(row: BlockRow) -> None:
    try:
        declared, used = decode_uvarint(row.varint)
    except ValueError:
        declared, used = -1, 0
    if used != len(row.varint) or declared != len(row.cid) + row.data_length or row.data_length < 0:
        raise BlocksInconsistent(
            f"the block at CAR offset {row.car_offset} has a varint that does not match its length"
        )


_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _hashers() -> ThreadPoolExecutor:
    """Threads shared by every reader for hashing leaves (hashlib releases the GIL, so the
    leaves of one segment are hashed on several cores at once)."""
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            workers = max(2, min(8, os.cpu_count() or 2))
            _hash_pool = ThreadPoolExecutor(workers, thread_name_prefix="inline-hash")
        return _hash_pool


def _digest(data: memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def _check_leaves(leaves: list[tuple[BlockRow, Future[bytes]]]) -> None:
    """Every leaf against its CID; the first mismatch (in CAR order) raises."""
    for row, digest in leaves:
        _check_leaf(row, digest.result())


def _check_leaf(row: BlockRow, digest: bytes) -> None:
    if digest != sha256_digest_of(row.cid):
        raise SourceBytesMismatch(
            f"source file {row.path} changed in place: the bytes at offset {row.file_offset} no "
            "longer match the block recorded for them (same size and mtime, different content)",
            row.path,
        )


def _put_stored(row: BlockRow, target: memoryview) -> None:
    data = row.raw_block or b""
    if len(data) != len(target):
        raise BlocksInconsistent(
            f"the stored block at CAR offset {row.car_offset} is {len(data)} bytes, its row says "
            f"{len(target)}"
        )
    if hashlib.sha256(data).digest() != sha256_digest_of(row.cid):
        raise BlocksInconsistent(
            f"the stored block at CAR offset {row.car_offset} does not match its CID"
        )
    target[:] = data


class InlinePieceStream(io.RawIOBase):
    """A read-only, sequential file object over a rebuilt piece (for readers of CAR files)."""

    def __init__(self, reader: InlinePieceReader) -> None:
        super().__init__()
        self._reader = reader
        self._position = 0

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` with the next bytes of the piece; 0 at its end."""
        with memoryview(buffer) as view:
            data = self._reader.pread(self._position, view.nbytes)
            view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        """The next `size` bytes (all the rest for -1), without an extra copy."""
        if size is None or size < 0:
            size = self._reader.size - self._position
        data = self._reader.pread(self._position, size)
        self._position += len(data)
        return data

    def close(self) -> None:
        """Release the reader."""
        self._reader.close()
        super().close()


def open_inline_piece(db: Database, car_id: int) -> InlinePieceReader:
    """A reader over the inline piece of `car_id` (its row and source looked up now)."""
    return InlinePieceReader(db, load_inline_car(db, car_id), source_of_car(db, car_id))
