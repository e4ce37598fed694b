"""Per-piece checks of one CAR file: framing, block hashes, roots, size, block count, piece CID.

The CARv1 framing is parsed here rather than with `content.car`, which also holds the writer: a
shared misreading of the format would otherwise pass unnoticed. Every byte of the file is read
once; the same bytes feed the framing parser, the block hashes and the commP calculator (which
runs in a helper thread, as its C core releases the GIL).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from dataset_worker.content.cid import DAG_PB, RAW, cid_to_str, piece_cid
from dataset_worker.content.commp import MIN_PAYLOAD, CommP, CommPError, finalize
from dataset_worker.pieces.inline import InlinePieceError
from dataset_worker.verify.report import Problem

READ_SIZE = 4 << 20
# go-car's limits (MaxAllowedHeaderSize / MaxAllowedSectionSize): anything longer is corrupt,
# and refusing it keeps a damaged length prefix from asking for gigabytes of memory.
MAX_HEADER_SIZE = 32 << 20
MAX_SECTION_SIZE = 32 << 20
MAX_BLOCK_PROBLEMS = 50  # per piece; a wholesale-corrupt CAR would otherwise flood the report
SHA2_256 = 0x12
_MAX_VARINT_BYTES = 9  # 63-bit values, as Go's uvarint readers accept
_MAX_CBOR_DEPTH = 16

Progress = Callable[[int], object]


class CarFormatError(ValueError):
    """The file is not a well-formed CARv1 (the message gives the byte offset)."""


@dataclass(frozen=True, slots=True)
class Section:
    """One block section: its CID, data, and where the section and its data start in the file."""

    cid: bytes
    data: bytes
    offset: int
    data_offset: int


class _Reader:
    """Buffered reads over a file that hand every byte, once and in order, to `sink`."""

    def __init__(
        self, stream: BinaryIO, size: int, sink: Callable[[bytes], None], progress: Progress | None
    ) -> None:
        self._read = stream.read
        self.size = size
        self._sink = sink
        self._progress = progress
        self._buf = b""
        self._pos = 0
        self.offset = 0  # file offset of the next byte handed out

    @property
    def remaining(self) -> int:
        """Bytes of the file not handed out yet (per the size at open)."""
        return self.size - self.offset

    def _fill(self) -> bool:
        chunk = self._read(READ_SIZE)
        if not chunk:
            return False
        self._sink(chunk)
        if self._progress is not None:
            self._progress(len(chunk))
        self._buf, self._pos = chunk, 0
        return True

    def read(self, n: int) -> bytes:
        """Up to `n` bytes (fewer only at the end of the file)."""
        parts: list[bytes] = []
        while n > 0:
            if self._pos >= len(self._buf) and not self._fill():
                break
            part = self._buf[self._pos : self._pos + n]
            self._pos += len(part)
            self.offset += len(part)
            n -= len(part)
            parts.append(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_byte(self) -> int | None:
        """The next byte, or None at the end of the file."""
        if self._pos >= len(self._buf) and not self._fill():
            return None
        byte = self._buf[self._pos]
        self._pos += 1
        self.offset += 1
        return byte

    def rest(self) -> Iterator[bytes]:
        """Everything not read yet, in chunks."""
        if self._pos < len(self._buf):
            part = self._buf[self._pos :]
            self._pos = len(self._buf)
            self.offset += len(part)
            yield part
        while self._fill():
            self._pos = len(self._buf)
            self.offset += len(self._buf)
            yield self._buf

    def drain(self) -> None:
        """Consume the rest of the file (so the sink still sees every byte after an error)."""
        for _ in self.rest():
            pass


def _read_varint(reader: _Reader, what: str) -> int | None:
    """A uvarint, or None at a clean end of file."""
    start = reader.offset
    value = shift = 0
    for index in range(_MAX_VARINT_BYTES):
        byte = reader.read_byte()
        if byte is None:
            if index == 0:
                return None
            raise CarFormatError(f"truncated inside the {what} length varint at offset {start}")
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value
        shift += 7
    raise CarFormatError(f"{what} length varint at offset {start} is longer than 9 bytes")


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(_MAX_VARINT_BYTES):
        if pos + index >= len(data):
            break
        byte = data[pos + index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos + index + 1
        shift += 7
    raise ValueError("truncated or overlong varint")


def cid_length(section: bytes) -> int:
    """Length of the CID (v0 or v1) at the start of `section`; ValueError if it is malformed."""
    if section[:2] == b"\x12\x20":  # CIDv0: a bare sha2-256 multihash
        end = 34
    else:
        version, pos = _uvarint(section, 0)
        if version != 1:
            raise ValueError(f"CID version {version}")
        _codec, pos = _uvarint(section, pos)
        _hash_code, pos = _uvarint(section, pos)
        digest_length, pos = _uvarint(section, pos)
        end = pos + digest_length
    if end > len(section):
        raise ValueError("the section is shorter than its CID")
    return end


def hash_problem(cid: bytes, data: bytes | memoryview) -> str | None:
    """Why `data` is not the block `cid` (a sentence), or None when it hashes to it."""
    if cid[:2] == b"\x12\x20":
        codec, hash_code, digest = DAG_PB, SHA2_256, cid[2:]
    else:
        _version, pos = _uvarint(cid, 0)
        codec, pos = _uvarint(cid, pos)
        hash_code, pos = _uvarint(cid, pos)
        _length, pos = _uvarint(cid, pos)
        digest = cid[pos:]
    if hash_code != SHA2_256 or codec not in (RAW, DAG_PB):
        return f"unexpected CID kind (codec 0x{codec:x}, hash 0x{hash_code:x})"
    if hashlib.sha256(data).digest() != digest:
        return "its data does not hash to its CID"
    return None


def read_header(reader: _Reader) -> list[bytes]:
    """The roots of the CARv1 header at the start of the file."""
    length = _read_varint(reader, "header")
    if length is None:
        raise CarFormatError("the file is empty: no CAR header")
    if length == 0 or length > min(MAX_HEADER_SIZE, reader.remaining):
        raise CarFormatError(
            f"header length {length} is impossible ({reader.remaining} bytes follow)"
        )
    header = reader.read(length)
    try:
        value, end = _cbor(header, 0, 0)
    except (ValueError, IndexError) as exc:
        raise CarFormatError(f"header is not valid DAG-CBOR: {exc}") from None
    if end != len(header) or not isinstance(value, dict):
        raise CarFormatError("header is not a single CBOR map")
    roots, version = value.get("roots"), value.get("version")
    if version != 1:
        raise CarFormatError(f"header version is {version!r}, expected 1")
    if not isinstance(roots, list) or not all(isinstance(r, _Link) for r in roots):
        raise CarFormatError('header "roots" is not an array of CIDs')
    return [r.cid for r in roots if isinstance(r, _Link)]


def iter_sections(reader: _Reader) -> Iterator[Section]:
    """Block sections after the header, up to the end of the file or the trailing zero padding."""
    while True:
        offset = reader.offset
        length = _read_varint(reader, "section")
        if length is None:
            return
        if length == 0:
            # Singularity pads small CARs with zeros: the first zero reads as an empty section.
            _check_padding(reader, offset)
            return
        if length > reader.remaining:
            raise CarFormatError(
                f"truncated: the section at offset {offset} needs {length} bytes, "
                f"only {reader.remaining} are left"
            )
        if length > MAX_SECTION_SIZE:
            raise CarFormatError(f"section at offset {offset} claims {length} bytes, over 32 MiB")
        section = reader.read(length)
        try:
            end = cid_length(section)
        except ValueError as exc:
            raise CarFormatError(f"section at offset {offset}: malformed CID: {exc}") from None
        yield Section(section[:end], section[end:], offset, reader.offset - length + end)


def _check_padding(reader: _Reader, start: int) -> None:
    for chunk in reader.rest():
        if chunk.count(0) != len(chunk):
            at = reader.offset - len(chunk) + (len(chunk) - len(chunk.lstrip(b"\0")))
            raise CarFormatError(
                f"non-zero byte at offset {at} in the zero padding that starts at offset {start}"
            )


@dataclass(frozen=True, slots=True)
class _Link:
    cid: bytes


_Cbor = int | bytes | str | list["_Cbor"] | dict[str, "_Cbor"] | _Link | None


def _cbor(buf: bytes, pos: int, depth: int) -> tuple[_Cbor, int]:
    """Just enough DAG-CBOR for a CAR header: uints, strings, arrays, maps, tag 42 links."""
    if depth > _MAX_CBOR_DEPTH:
        raise ValueError("nested too deep")
    major, info = buf[pos] >> 5, buf[pos] & 0x1F
    pos += 1
    if info < 24:
        arg = info
    elif info <= 27:
        size = 1 << (info - 24)
        if pos + size > len(buf):
            raise ValueError("truncated")
        arg = int.from_bytes(buf[pos : pos + size], "big")
        pos += size
    else:
        raise ValueError(f"unsupported item 0x{buf[pos - 1]:02x}")
    if major == 0:
        return arg, pos
    if major in (2, 3):
        if pos + arg > len(buf):
            raise ValueError("truncated string")
        chunk = buf[pos : pos + arg]
        return (chunk if major == 2 else chunk.decode("utf-8")), pos + arg
    if major == 4:
        items: list[_Cbor] = []
        for _ in range(arg):
            item, pos = _cbor(buf, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        mapping: dict[str, _Cbor] = {}
        for _ in range(arg):
            key, pos = _cbor(buf, pos, depth + 1)
            if not isinstance(key, str) or key in mapping:
                raise ValueError("map keys must be distinct strings")
            mapping[key], pos = _cbor(buf, pos, depth + 1)
        return mapping, pos
    if major == 6 and arg == 42:
        link, pos = _cbor(buf, pos, depth + 1)
        if not isinstance(link, bytes) or link[:1] != b"\x00" or len(link) < 3:
            raise ValueError("tag 42 must wrap 0x00 + CID bytes")
        return _Link(link[1:]), pos
    raise ValueError(f"unsupported major type {major}")


Opener = Callable[[], tuple[BinaryIO, int]]


def _open_file(path: Path) -> tuple[BinaryIO, int]:
    stream = open(path, "rb", buffering=0)  # closed by scan_car
    try:
        return stream, os.fstat(stream.fileno()).st_size
    except BaseException:
        stream.close()
        raise


def scan_car(
    path: Path,
    on_block: Callable[[Section], None],
    *,
    sink: Callable[[bytes], None] | None = None,
    progress: Progress | None = None,
    opener: Opener | None = None,
) -> list[bytes]:
    """Parse the CAR at `path` (or the stream `opener` gives, with its size), calling
    `on_block` for each section; returns the header roots.

    CarFormatError on bad framing (after feeding the whole file to `sink` all the same).
    """
    stream, size = opener() if opener is not None else _open_file(path)
    with stream:
        reader = _Reader(stream, size, sink or (lambda _chunk: None), progress)
        try:
            roots = read_header(reader)
            for section in iter_sections(reader):
                on_block(section)
        except CarFormatError:
            reader.drain()
            raise
        return roots


@dataclass(frozen=True, slots=True)
class ExpectedPiece:
    """What the database records about one piece."""

    piece_cid: bytes
    piece_size: int
    root_cid: bytes
    file_size: int
    block_rows: int | None  # None: the preparation keeps no block rows (no-inline)
    min_piece_size: int


@dataclass
class PieceCheck:
    """The outcome of `check_piece`: counts and problems."""

    blocks: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    damaged: set[bytes] = field(default_factory=set)  # CIDs of blocks that fail their hash


class _CommPFeed:
    """Feeds chunks to a CommP in one helper thread, one chunk ahead of the reader."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.calc = CommP()
        self._pool = pool
        self._pending: Future[None] | None = None
        self.error: str | None = None

    def __call__(self, chunk: bytes) -> None:
        self._wait()
        if self.error is None:
            self._pending = self._pool.submit(self.calc.update, chunk)

    def _wait(self) -> None:
        if self._pending is not None:
            try:
                self._pending.result()
            except CommPError as exc:  # past the largest piece: later bytes cannot count
                self.error = str(exc)
            self._pending = None

    def finish(self) -> None:
        """Wait for the last chunk."""
        self._wait()


def check_piece(
    path: Path,
    expected: ExpectedPiece,
    *,
    on_block: Callable[[Section], None] | None = None,
    progress: Progress | None = None,
    opener: Opener | None = None,
) -> PieceCheck:
    """Re-read one CAR (the file at `path`, or what `opener` gives: an inline piece rebuilt
    from its source) and compare it with its `cars` row; `on_block` sees every good block."""
    label = cid_to_str(expected.piece_cid)
    result = PieceCheck()

    def problem(kind: str, message: str, block: bytes | None = None) -> None:
        result.problems.append(
            Problem(
                kind,
                message,
                piece_cid=label,
                car_path=str(path),
                block_cid=cid_to_str(block) if block is not None else None,
            )
        )

    bad_blocks = 0

    def take(section: Section) -> None:
        nonlocal bad_blocks
        result.blocks += 1
        reason = hash_problem(section.cid, section.data)
        if reason is None:
            if on_block is not None:
                on_block(section)
            return
        bad_blocks += 1
        result.damaged.add(section.cid)
        if bad_blocks <= MAX_BLOCK_PROBLEMS:
            problem("block-hash", f"block at offset {section.offset}: {reason}", block=section.cid)

    with ThreadPoolExecutor(1, thread_name_prefix="verify-commp") as pool:
        feed = _CommPFeed(pool)
        counted = _Counter(feed)
        framing_ok = True
        try:
            roots = scan_car(path, take, sink=counted, progress=progress, opener=opener)
        except InlinePieceError as exc:
            kind = "source-changed" if exc.file else "inline-rows"
            problem(kind, f"the inline piece cannot be rebuilt: {exc}")
            return result
        except CarFormatError as exc:
            framing_ok = False
            roots = []
            problem("car-framing", f"not a valid CAR: {exc}")
        except OSError as exc:
            problem("car-unreadable", f"cannot read the CAR: {exc.strerror or exc}")
            return result
        finally:
            feed.finish()
    result.bytes_read = counted.total
    if bad_blocks > MAX_BLOCK_PROBLEMS:
        problem("block-hash", f"{bad_blocks - MAX_BLOCK_PROBLEMS} more blocks fail their hash")
    if counted.total != expected.file_size:
        problem(
            "car-size",
            f"the CAR has {counted.total} bytes, the database records {expected.file_size}",
        )
    if framing_ok:
        _check_roots(roots, expected, problem)
        if expected.block_rows is not None and expected.block_rows != result.blocks:
            problem(
                "block-count",
                f"the CAR holds {result.blocks} blocks, the database has "
                f"{expected.block_rows} block rows for it",
            )
    _check_piece_cid(feed, counted.total, expected, problem)
    return result


class _Counter:
    """A sink that counts bytes and passes them on."""

    def __init__(self, inner: Callable[[bytes], None]) -> None:
        self.total = 0
        self._inner = inner

    def __call__(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._inner(chunk)


def _check_roots(
    roots: list[bytes], expected: ExpectedPiece, problem: Callable[[str, str], None]
) -> None:
    if roots != [expected.root_cid]:
        found = ", ".join(cid_to_str(r) for r in roots) or "none"
        problem(
            "root-cid",
            f"the CAR header's roots are [{found}], the database records "
            f"{cid_to_str(expected.root_cid)}",
        )


def _check_piece_cid(
    feed: _CommPFeed, size: int, expected: ExpectedPiece, problem: Callable[[str, str], None]
) -> None:
    if feed.error is not None:
        problem("piece-cid", f"cannot compute commP: {feed.error}")
        return
    if size < MIN_PAYLOAD:
        problem("piece-cid", f"cannot compute commP: {size} bytes, at least {MIN_PAYLOAD} needed")
        return
    try:
        commitment, piece_size = finalize(feed.calc.digest(), expected.min_piece_size)
    except CommPError as exc:
        problem("piece-cid", f"cannot compute commP: {exc}")
        return
    computed = piece_cid(commitment)
    if computed != expected.piece_cid:
        problem(
            "piece-cid",
            f"commP of the CAR gives piece CID {cid_to_str(computed)}, the database records "
            f"{cid_to_str(expected.piece_cid)}",
        )
    if piece_size != expected.piece_size:
        problem(
            "piece-size",
            f"commP of the CAR gives piece size {piece_size}, the database records "
            f"{expected.piece_size}",
        )
