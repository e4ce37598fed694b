"""Walking a CARv1 file's section framing without reading block data.

`CarReader` reads every block; finding where blocks are (to count them, or to index them by CID
and read them later) only needs each section's varint and CID, so the data is skipped with a
seek. Used by the content provider (block counts) and by `dataset-worker extract` (its index).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from dataset_worker.content.car import CarReader
from dataset_worker.content.varint import decode_uvarint

# go-car's MaxAllowedSectionSize: a longer section is corrupt, and refusing it keeps a damaged
# length prefix from making a reader allocate gigabytes.
MAX_SECTION_SIZE = 32 << 20
_HEAD_READ = 128  # a varint (<= 10 bytes) plus any CID this project can meet


class CarFramingError(ValueError):
    """The file is not a well-formed CARv1 (the message names the byte offset)."""


@dataclass(frozen=True, slots=True)
class SectionHead:
    """One block section: its CID, and where the section and the block's data lie in the file."""

    cid: bytes
    offset: int
    data_offset: int
    data_length: int


def read_roots(stream: BinaryIO) -> list[bytes]:
    """Parse the CAR header from the start of `stream`; leaves the stream just after it."""
    try:
        return CarReader(stream).roots
    except ValueError as exc:
        raise CarFramingError(f"bad CAR header: {exc}") from None


def iter_sections(stream: BinaryIO, size: int) -> Iterator[SectionHead]:
    """Every block section after the header (call `read_roots` first), up to trailing padding.

    `size` is the file size: a section that runs past it means the file is truncated.
    """
    offset = stream.tell()
    while offset < size:
        stream.seek(offset)
        head = stream.read(_HEAD_READ)
        try:
            length, pos = decode_uvarint(head)
        except ValueError:
            raise CarFramingError(f"bad section length varint at offset {offset}") from None
        if length == 0:
            return  # zero padding starts here (Singularity pads small CARs)
        if length > MAX_SECTION_SIZE:
            raise CarFramingError(
                f"section at offset {offset} claims {length} bytes, more than the "
                f"{MAX_SECTION_SIZE}-byte limit"
            )
        cid_length = _cid_length(head[pos:], offset)
        if cid_length > length:
            raise CarFramingError(f"section at offset {offset} is shorter than its CID")
        end = offset + pos + length
        if end > size:
            raise CarFramingError(
                f"CAR truncated: section at offset {offset} needs {end - size} more bytes"
            )
        cid = head[pos : pos + cid_length]
        yield SectionHead(cid, offset, offset + pos + cid_length, length - cid_length)
        offset = end


def _cid_length(buf: bytes, offset: int) -> int:
    """Byte length of the CID at the start of `buf` (CIDv0 or CIDv1)."""
    if buf[:2] == b"\x12\x20":  # CIDv0: a bare sha2-256 multihash
        return 34
    try:
        pos = 0
        for _ in range(3):  # version, codec, multihash code
            _, pos = decode_uvarint(buf, pos)
        digest_length, pos = decode_uvarint(buf, pos)
    except ValueError:
        raise CarFramingError(f"bad CID in the section at offset {offset}") from None
    if pos + digest_length > len(buf):
        raise CarFramingError(f"CID too long in the section at offset {offset}")
    return pos + digest_length
