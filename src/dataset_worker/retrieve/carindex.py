"""A CID → (CAR file, offset, length) index over a set of CAR files, with verified reads.

Indexing walks only each section's framing (`content.carscan`), so a CAR's data is read once,
when a block is used; every read is checked against its CID's hash before it is returned.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from dataset_worker.content.carscan import CarFramingError, iter_sections, read_roots
from dataset_worker.content.cid import DAG_PB, RAW, SHA2_256, cid_to_str
from dataset_worker.content.varint import decode_uvarint

IDENTITY = 0x00


class ExtractError(Exception):
    """The CARs cannot be turned back into files: the message names the block, file or rule."""


class MissingBlock(ExtractError):
    """A block the tree needs is in none of the CARs."""


@dataclass(frozen=True, slots=True)
class _Location:
    car: int  # index into BlockIndex.cars
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class CidInfo:
    """The parts of a CID that decide how to read its block."""

    codec: int
    hash_code: int
    digest: bytes


def describe(cid: bytes) -> str:
    """A CID as text for messages (its string form when it is a CIDv1)."""
    if cid[:1] == b"\x01":
        return cid_to_str(cid)
    return "0x" + cid.hex()


def parse_cid(cid: bytes) -> CidInfo:
    """Codec, multihash code and digest; ExtractError for anything but a complete CID."""
    if cid[:2] == b"\x12\x20" and len(cid) == 34:  # CIDv0: dag-pb, sha2-256
        return CidInfo(DAG_PB, SHA2_256, cid[2:])
    try:
        version, pos = decode_uvarint(cid)
        codec, pos = decode_uvarint(cid, pos)
        hash_code, pos = decode_uvarint(cid, pos)
        length, pos = decode_uvarint(cid, pos)
    except ValueError:
        raise ExtractError(f"malformed CID 0x{cid.hex()}") from None
    if version != 1 or len(cid) - pos != length:
        raise ExtractError(f"malformed CID 0x{cid.hex()}")
    return CidInfo(codec, hash_code, cid[pos:])


class BlockIndex:
    """Blocks of several CAR files by CID; the first CAR that holds a CID is the one read."""

    def __init__(self) -> None:
        self.cars: list[Path] = []
        self._where: dict[bytes, _Location] = {}
        self._fds: list[int] = []

    def __enter__(self) -> BlockIndex:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the CAR files."""
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def __len__(self) -> int:
        return len(self._where)

    def add_car(self, path: Path) -> int:
        """Index one CAR file's blocks; returns how many. ExtractError if its framing is bad."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        number = len(self.cars)
        self.cars.append(path)
        self._fds.append(fd)
        count = 0
        with os.fdopen(os.dup(fd), "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            try:
                read_roots(stream)
                for section in iter_sections(stream, size):
                    location = _Location(number, section.data_offset, section.data_length)
                    self._where.setdefault(section.cid, location)
                    count += 1
            except CarFramingError as exc:
                raise ExtractError(f"{path}: {exc}") from None
        return count

    def length(self, cid: bytes) -> int:
        """The data length of block `cid` (from the index, nothing read); MissingBlock if absent."""
        info = parse_cid(cid)
        if info.hash_code == IDENTITY:
            return len(info.digest)
        return self._location(cid).length

    def get(self, cid: bytes) -> bytes:
        """The bytes of block `cid`, checked against its hash."""
        info = parse_cid(cid)
        if info.codec not in (RAW, DAG_PB):
            raise ExtractError(
                f"block {describe(cid)}: codec 0x{info.codec:x} is not raw or dag-pb"
            )
        if info.hash_code == IDENTITY:
            return info.digest  # the data is the CID itself
        if info.hash_code != SHA2_256 or len(info.digest) != 32:
            raise ExtractError(
                f"block {describe(cid)}: multihash 0x{info.hash_code:x} is not supported "
                "(only sha2-256)"
            )
        where = self._location(cid)
        data = os.pread(self._fds[where.car], where.length, where.offset)
        if len(data) != where.length:
            raise ExtractError(f"{self.cars[where.car]}: truncated at block {describe(cid)}")
        if hashlib.sha256(data).digest() != info.digest:
            raise ExtractError(
                f"{self.cars[where.car]}: block {describe(cid)} at offset {where.offset} does "
                "not match its CID (corrupt data)"
            )
        return data

    def _location(self, cid: bytes) -> _Location:
        where = self._where.get(cid)
        if where is None:
            raise MissingBlock(f"block {describe(cid)} is in none of the CARs")
        return where
