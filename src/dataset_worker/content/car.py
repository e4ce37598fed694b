"""CARv1 writing and reading (docs/formats.md#car-framing): one header with one root, then varint-framed blocks.

The header's DAG-CBOR is written by hand: it is always the same 2-entry map around one CID, and
the reader only has to understand that same shape. Big blocks are written as two writes (prefix,
then payload) so a 1 MiB payload is never copied to be concatenated with its 37-byte prefix;
small ones in one, and a batch of tiny files' leaves in one for the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from dataset_worker.content._leaves import frame_leaves
from dataset_worker.content.cid import raw_cid
from dataset_worker.content.varint import decode_uvarint, encode_uvarint

Tee = Callable[[bytes | memoryview], object]

_CID_TAG = b"\xd8\x2a"  # CBOR tag 42 (IPLD link)
SMALL_BLOCK = 4 << 10  # blocks under this size are written with their prefix in one write
# A real header nests 3 deep (map, roots array, link); the bound keeps crafted input from
# exhausting Python's stack with a RecursionError.
MAX_CBOR_DEPTH = 64


# Largest header or block section read: blocks are at most 1 MiB (2 MiB in other tools).
MAX_SECTION_SIZE = 32 << 20


def _cbor_head(major: int, value: int) -> bytes:
    """A CBOR initial byte plus argument, in the shortest form (as DAG-CBOR requires)."""
    if value < 24:
        return bytes((major << 5 | value,))
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes((major << 5 | extra,)) + value.to_bytes(size, "big")
    raise ValueError(f"CBOR argument too large: {value}")


def car_header(root_cid: bytes) -> bytes:
    """The CARv1 header for one root: uvarint(len(H)) + H, H = {"roots": [root], "version": 1}.

    59 bytes for a 36-byte CID.
    """
    link = b"\x00" + root_cid  # the multibase-identity prefix DAG-CBOR puts before CID bytes
    body = b"".join(
        (
            b"\xa2",  # map(2); keys in DAG-CBOR order: shorter first
            b"\x65roots",
            b"\x81",  # array(1)
            _CID_TAG,
            _cbor_head(2, len(link)),
            link,
            b"\x67version",
            b"\x01",
        )
    )
    return encode_uvarint(len(body)) + body


class BlockLocation(NamedTuple):
    """Where a block landed: `car_offset` is where its varint starts; the length counts varint,
    CID and data (the car_blocks columns)."""

    car_offset: int
    car_block_length: int
    varint: bytes


def section_at(car_offset: int, cid: bytes, data_length: int) -> BlockLocation:
    """Where a block of `data_length` bytes written at `car_offset` lies, as `write_block`
    returned it: what a one-leaf range keeps (its offset) is enough to find the rest."""
    varint = encode_uvarint(len(cid) + data_length)
    return BlockLocation(car_offset, len(varint) + len(cid) + data_length, varint)


class CarWriter:
    """Streams a CARv1 into a binary file object; `tee` receives every byte written, in order.

    With an explicit `root` the header is written at once (DAG pieces). With `root=None` the
    header is written when the first block arrives, with that block's CID as the root (data
    pieces, docs/formats.md#car-framing). With `out=None` the bytes only go to `tee` (inline pieces: commP only).
    """

    def __init__(
        self, out: BinaryIO | None, root: bytes | None = None, *, tee: Tee | None = None
    ) -> None:
        self._out = out
        self._tee = tee
        self._root: bytes | None = None
        self._written = 0
        if root is not None:
            self._write_header(root)

    @property
    def root(self) -> bytes | None:
        """The header root, or None while a lazy header is still unwritten."""
        return self._root

    @property
    def bytes_written(self) -> int:
        """Total CAR bytes written so far (header included)."""
        return self._written

    def write_block(self, cid: bytes, data: bytes | bytearray | memoryview) -> BlockLocation:
        """Append one block section: uvarint(len(cid)+len(data)), cid, data."""
        if self._root is None:
            self._write_header(cid)
        offset = self._written
        varint = encode_uvarint(len(cid) + len(data))
        if len(data) < SMALL_BLOCK:
            # One write (and one commP update) for a tiny file's block: copying a few KB is
            # cheaper than a second round of calls.
            self._emit(b"".join((varint, cid, data)))
        else:
            self._emit(varint + cid)
            self._emit(data)
        return BlockLocation(offset, self._written - offset, varint)

    def write_leaves(
        self, data: bytes | bytearray | memoryview, lengths: list[int]
    ) -> tuple[list[bytes], list[int]]:
        """Append one raw leaf per length, cut from `data` in order; their CIDs and CAR offsets.

        The same sections `write_block` writes for each leaf, hashed and framed in C without
        the GIL (`_leaves.c`), and written with one call: a pack job of tiny files spends its
        time here.
        """
        if not lengths:
            return [], []
        if self._root is None:
            self._write_header(raw_cid(memoryview(data)[: lengths[0]]))
        sections, cids, offsets = frame_leaves(data, lengths, self._written)
        self._emit(sections)
        return cids, offsets

    def _write_header(self, root: bytes) -> None:
        self._root = root
        self._emit(car_header(root))

    def _emit(self, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk)
        size = view.nbytes
        if self._out is not None:
            written = self._out.write(view)
            # Raw (unbuffered) files may write less than asked; buffered ones write all or raise.
            while written is not None and written < size:
                written += self._out.write(view[written:])
        if self._tee is not None:
            self._tee(view)
        self._written += size


@dataclass(frozen=True, slots=True)
class CarBlock:
    """One block read back from a CAR."""

    cid: bytes
    data: bytes
    car_offset: int


class CarReader:
    """Reads a CARv1: `roots` after construction, then iterate for the blocks.

    A zero-length section starts trailing zero padding (Singularity pads small CARs); everything
    after it must be zero bytes.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pos = 0
        length = self._read_varint(allow_eof=False)
        if length is None:  # only reachable with allow_eof=True; keeps the type checker informed
            raise ValueError("empty CAR")
        header = self._read_exact(length, "CAR header")
        self.roots, self.version = _decode_header(header)
        if self.version != 1:
            raise ValueError(f"CAR version {self.version}, expected 1")
        self.padding = 0

    def __iter__(self) -> Iterator[CarBlock]:
        while True:
            offset = self._pos
            length = self._read_varint(allow_eof=True)
            if length is None:
                return
            if length == 0:
                self._read_padding(offset)
                return
            section = self._read_exact(length, f"block section at offset {offset}")
            cid_length = _cid_length(section)
            yield CarBlock(section[:cid_length], section[cid_length:], offset)

    def _read_padding(self, start: int) -> None:
        self.padding = self._pos - start
        while chunk := self._stream.read(1 << 20):
            if chunk.count(0) != len(chunk):
                raise ValueError(f"non-zero byte in trailing padding that starts at offset {start}")
            self.padding += len(chunk)
            self._pos += len(chunk)

    def _read_varint(self, *, allow_eof: bool) -> int | None:
        raw = bytearray()
        while True:
            byte = self._stream.read(1)
            if not byte:
                if allow_eof and not raw:
                    return None
                raise ValueError(f"CAR truncated inside a varint at offset {self._pos}")
            raw += byte
            self._pos += 1
            if byte[0] < 0x80:
                return decode_uvarint(bytes(raw))[0]

    def _read_exact(self, length: int, what: str) -> bytes:
        if length > MAX_SECTION_SIZE:
            # A hostile length would otherwise be allocated before the short read is noticed
            # (a MemoryError, found by tests/unit/test_fuzz_parsers.py).
            raise ValueError(
                f"{what} claims {length} bytes, more than the {MAX_SECTION_SIZE}-byte limit"
            )
        data = self._stream.read(length)
        if len(data) != length:
            raise ValueError(f"CAR truncated: {what} needs {length} bytes, got {len(data)}")
        self._pos += length
        return data


def iter_car_blocks(stream: BinaryIO) -> Iterator[CarBlock]:
    """Blocks of a CARv1 read from the start of `stream` (the header is checked and skipped)."""
    return iter(CarReader(stream))


def _cid_length(section: bytes) -> int:
    """Byte length of the CID at the start of a block section (CIDv0 or CIDv1)."""
    if section[:2] == b"\x12\x20":  # CIDv0: a bare sha2-256 multihash
        end = 34
    else:
        pos = 0
        for _ in range(3):  # version, codec, multihash code
            _, pos = decode_uvarint(section, pos)
        digest_length, pos = decode_uvarint(section, pos)
        end = pos + digest_length
    if end > len(section):
        raise ValueError("CAR block section shorter than its CID")
    return end


def _decode_header(header: bytes) -> tuple[list[bytes], int]:
    value, end = _cbor_decode(header, 0)
    if end != len(header) or not isinstance(value, dict):
        raise ValueError("CAR header is not a single CBOR map")
    roots, version = value.get("roots"), value.get("version")
    if not isinstance(roots, list) or not isinstance(version, int):
        raise ValueError('CAR header needs "roots" (array) and "version" (integer)')
    cids = []
    for root in roots:
        if not isinstance(root, _Link):
            raise ValueError("CAR header root is not a CID link")
        cids.append(root.cid)
    return cids, version


@dataclass(frozen=True, slots=True)
class _Link:
    cid: bytes


_Cbor = int | bytes | str | list["_Cbor"] | dict[str, "_Cbor"] | _Link


def _cbor_decode(buf: bytes, pos: int, depth: int = 0) -> tuple[_Cbor, int]:
    """Just enough CBOR for a CAR header: uints, byte/text strings, arrays, maps, tag 42."""
    if depth >= MAX_CBOR_DEPTH:
        raise ValueError(f"CAR header: CBOR nested deeper than {MAX_CBOR_DEPTH} levels")
    if pos >= len(buf):
        raise ValueError("CAR header: truncated CBOR")
    major, info = buf[pos] >> 5, buf[pos] & 0x1F
    pos += 1
    if info < 24:
        arg = info
    elif info <= 27:
        size = 1 << (info - 24)
        arg = int.from_bytes(buf[pos : pos + size], "big")
        pos += size
    else:
        raise ValueError(f"CAR header: unsupported CBOR item 0x{buf[pos - 1]:02x}")
    if major == 0:
        return arg, pos
    if major in (2, 3):
        chunk = buf[pos : pos + arg]
        if len(chunk) != arg:
            raise ValueError("CAR header: truncated CBOR string")
        return (chunk if major == 2 else chunk.decode("utf-8")), pos + arg
    if major == 4:
        items = []
        for _ in range(arg):
            item, pos = _cbor_decode(buf, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        mapping: dict[str, _Cbor] = {}
        for _ in range(arg):
            key, pos = _cbor_decode(buf, pos, depth + 1)
            mapping[str(key)], pos = _cbor_decode(buf, pos, depth + 1)
        return mapping, pos
    if major == 6 and arg == 42:
        link, pos = _cbor_decode(buf, pos, depth + 1)
        if not isinstance(link, bytes) or link[:1] != b"\x00":
            raise ValueError("CAR header: tag 42 must wrap 0x00 + CID bytes")
        return _Link(link[1:]), pos
    raise ValueError(f"CAR header: unsupported CBOR major type {major}")
