"""Blocks of prepared DAGs by CID, for the trustless gateway: `car_blocks` rows, then the bytes.

A block is found through its `car_blocks` rows (index `ix_car_blocks_cid_key`: db/cidkey.py), or,
for a range packed as one leaf, through its `file_ranges` row (`ix_file_ranges_leaf_cid_key`,
docs/architecture.md#one-leaf-ranges), which holds the same facts. Its bytes come from the
first place that has them: `raw_block` (nodes; every block of a DAG piece), the CAR file at
`car_offset` (pieces with a local output), or the source file at `file_offset` (leaves of
inline preparations, local sources only). Every read is hashed against the CID
before it is returned, so a changed CAR or source file is reported, never served. No-inline
preparations keep no `car_blocks` rows: their blocks are unknown here.

Read-only: this module only ever reads the database.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import aliased

from dataset_worker.content.car import section_at
from dataset_worker.content.cid import cid_to_str
from dataset_worker.content.varint import decode_uvarint
from dataset_worker.db import Database
from dataset_worker.db.cidkey import cid_in
from dataset_worker.db.models import Car, CarBlock, File, FileRange, SourceAttachment, Storage
from dataset_worker.db.nodebytes import CorruptNode, node_bytes

SHA2_256 = 0x12
LOOKUP_BATCH = 500  # CIDs per `IN (…)` query: well under every database's parameter limit


class BlockNotFound(LookupError):
    """No `car_blocks` row has this CID (404)."""


class BlockUnavailable(Exception):
    """A block is known but no copy of it can be read and checked.

    `status` is 410 when its CAR or source file is gone, 409 when the bytes read do not hash to
    the CID (the file changed), 501 when it is held only where this server cannot read.
    """

    def __init__(self, status: int, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.file = file


@dataclass(frozen=True, slots=True)
class BlockLocation:
    """One `car_blocks` row of a block, with where its CAR and source file lie."""

    cid: bytes
    data_length: int
    car_offset: int
    header_length: int  # varint + CID: the block's data starts this far after car_offset
    raw_block: bytes | None
    raw_block_zlib: bytes | None  # a node kept compressed (db/nodebytes.py), read lazily
    car_path: Path | None
    car_storage_type: str | None
    file_offset: int | None
    source_path: Path | None
    source_storage_type: str | None
    # What replies name instead of server paths: the CAR's name in its output storage, the
    # file's path in its source (a client has no business knowing the server's folders).
    car_name: str | None = None
    file_name: str | None = None
    car_size: int | None = None  # the recorded CAR file size
    file_size: int | None = None  # the source file's size and mtime at the scan
    file_mtime_ns: int | None = None


def check_hash(cid: bytes, data: bytes | memoryview) -> bool:
    """True when `data` hashes to the CID's sha2-256 multihash (CIDv1, or a CIDv0 multihash)."""
    try:
        pos = 0
        if not cid.startswith(b"\x12\x20"):
            _version, pos = decode_uvarint(cid, pos)
            _codec, pos = decode_uvarint(cid, pos)
        code, pos = decode_uvarint(cid, pos)
        length, pos = decode_uvarint(cid, pos)
    except ValueError:
        return False
    if code != SHA2_256 or length != 32:
        return False
    return hashlib.sha256(data).digest() == cid[pos:]


def _safe_relative(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and "\x00" not in path and ".." not in parts


class BlockStore:
    """Looks blocks up in `car_blocks` and reads them, hash-checked."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def locate(self, cids: Iterable[bytes]) -> dict[bytes, list[BlockLocation]]:
        """Every row of each CID (rows of the same block in several pieces, oldest first)."""
        wanted = list(dict.fromkeys(cids))
        found: dict[bytes, list[BlockLocation]] = {}
        for start in range(0, len(wanted), LOOKUP_BATCH):
            for location in self._query(wanted[start : start + LOOKUP_BATCH]):
                found.setdefault(location.cid, []).append(location)
        return found

    def _query(self, cids: list[bytes]) -> list[BlockLocation]:
        output, source = aliased(Storage), aliased(Storage)
        places = (
            Car.storage_path,
            output.type,
            output.path,
            File.path,
            source,
            Car.file_size,
            File.size,
            File.last_modified_nano,
        )
        blocks = (
            select(CarBlock, *places)
            .join(Car, Car.id == CarBlock.car_id)
            .outerjoin(File, File.id == CarBlock.file_id)
            .where(cid_in(CarBlock.cid, cids))
            .order_by(CarBlock.id)
        )
        leaves = (
            select(FileRange, *places)
            .join(Car, Car.job_id == FileRange.job_id)
            .join(File, File.id == FileRange.file_id)
            .where(FileRange.car_offset.is_not(None), cid_in(FileRange.cid, cids))
            .order_by(FileRange.id)
        )
        with self.db.read() as session:
            rows = session.execute(_with_places(blocks, output, source)).all()
            leaf_rows = session.execute(_with_places(leaves, output, source)).all()
        located = [self._location(_block_facts(row[0]), _Place._make(row[1:])) for row in rows]
        located += [self._location(_leaf_facts(row[0]), _Place._make(row[1:])) for row in leaf_rows]
        return located

    @staticmethod
    def _location(block: _Facts, place: _Place) -> BlockLocation:
        """A block's facts and where its CAR and source file lie."""
        cid, car_offset, car_block_length, varint, raw_block, raw_block_zlib, file_offset = block
        car_name, file_path, source = place.car_name, place.file_path, place.source
        header = len(varint) + len(cid)
        car_path = None
        if place.output_root is not None and _safe_relative(car_name):
            car_path = Path(place.output_root) / car_name
        source_path = None
        if source is not None and file_path is not None and _safe_relative(file_path):
            source_path = Path(source.path) / file_path
        return BlockLocation(
            cid=cid,
            data_length=car_block_length - header,
            car_offset=car_offset,
            header_length=header,
            raw_block=raw_block,
            raw_block_zlib=raw_block_zlib,
            car_path=car_path,
            car_storage_type=place.output_type,
            file_offset=file_offset,
            source_path=source_path,
            source_storage_type=source.type if source is not None else None,
            car_name=car_name if car_path is not None else None,
            file_name=file_path if source_path is not None else None,
            car_size=place.car_size,
            file_size=place.file_size,
            file_mtime_ns=place.file_mtime_ns,
        )

    def check_sources(self, cids: Iterable[bytes]) -> None:
        """Before a reply starts: every block has a copy whose file still looks as recorded (a
        CAR file of the recorded size, a source file of the scanned size and mtime), else the
        first problem as BlockUnavailable (409/410) or BlockNotFound. Only stats, no reads: a
        file changed in place with the same size and mtime is still caught by the hash check
        while streaming, which then cuts the transfer."""
        found = self.locate(cids)
        checked: dict[tuple[str, Path], BlockUnavailable | None] = {}
        for cid in dict.fromkeys(cids):
            locations = found.get(cid)
            if not locations:
                raise BlockNotFound(f"no block {cid_to_str_safe(cid)} is known here")
            problems = [_stat_problem(location, checked) for location in locations]
            if all(problems):
                raise next(p for p in problems if p is not None)

    def get(self, cid: bytes, locations: list[BlockLocation] | None = None) -> bytes:
        """The block's bytes, checked against its CID; BlockNotFound or BlockUnavailable."""
        if locations is None:
            locations = self.locate([cid]).get(cid, [])
        if not locations:
            raise BlockNotFound(f"no block {cid_to_str_safe(cid)} is known here")
        first_error: BlockUnavailable | None = None
        for location in locations:
            try:
                return _read_checked(location)
            except BlockUnavailable as exc:
                first_error = first_error or exc
        assert first_error is not None
        raise first_error


class _Place(NamedTuple):
    """The `places` columns of a block lookup: its CAR's and its source file's."""

    car_name: str
    output_type: str | None
    output_root: str | None
    file_path: str | None
    source: Storage | None
    car_size: int | None
    file_size: int | None
    file_mtime_ns: int | None


# (cid, car_offset, car_block_length, varint, raw_block, raw_block_zlib, file_offset): a block's
# row facts.
_Facts = tuple[bytes, int, int, bytes, bytes | None, bytes | None, int | None]
_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def _with_places(query: _Query, output: Any, source: Any) -> _Query:
    """The CAR's output storage and the file's source storage, joined to a block query."""
    return (
        query.outerjoin(output, output.id == Car.storage_id)
        .outerjoin(SourceAttachment, SourceAttachment.id == File.attachment_id)
        .outerjoin(source, source.id == SourceAttachment.storage_id)
    )


def _block_facts(block: CarBlock) -> _Facts:
    return (
        block.cid,
        block.car_offset,
        block.car_block_length,
        block.varint,
        block.raw_block,
        block.raw_block_zlib,
        block.file_offset,
    )


def _leaf_facts(leaf: FileRange) -> _Facts:
    """A one-leaf range as the block row it stands for: the range's bytes at its offset."""
    assert leaf.cid is not None and leaf.car_offset is not None
    section = section_at(leaf.car_offset, leaf.cid, leaf.length)
    return (
        leaf.cid,
        leaf.car_offset,
        section.car_block_length,
        section.varint,
        None,
        None,
        leaf.offset,
    )


def cid_to_str_safe(cid: bytes) -> str:
    """The CID as text for messages (CIDv0 multihashes are shown as hex)."""
    return cid.hex() if cid.startswith(b"\x12\x20") else cid_to_str(cid)


def _stat_problem(
    location: BlockLocation, checked: dict[tuple[str, Path], BlockUnavailable | None]
) -> BlockUnavailable | None:
    """Why this copy of a block cannot be served as recorded (None: it looks fine)."""
    if location.raw_block is not None or location.raw_block_zlib is not None:
        return None
    if location.car_path is not None and location.car_storage_type == "local":
        key, size, mtime = ("car", location.car_path), location.car_size, None
        what, name = "CAR file", location.car_name or location.car_path.name
    elif location.source_path is not None and location.source_storage_type == "local":
        key, size, mtime = ("source", location.source_path), location.file_size, None
        mtime = location.file_mtime_ns
        what, name = "source file", location.file_name or location.source_path.name
    else:
        return None  # read (and refused with the right status) when it is asked for
    if key not in checked:
        checked[key] = _stat_check(key[1], what, name, size, mtime)
    return checked[key]


def _stat_check(
    path: Path, what: str, name: str, size: int | None, mtime_ns: int | None
) -> BlockUnavailable | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return BlockUnavailable(410, f"the {what} {name} no longer exists", name)
    except OSError as exc:
        return BlockUnavailable(409, f"the {what} {name} cannot be read: {exc.strerror}", name)
    if size is not None and size >= 0 and info.st_size != size:
        return BlockUnavailable(
            409,
            f"the {what} {name} is {info.st_size} bytes, {size} when recorded: it changed",
            name,
        )
    if mtime_ns is not None and mtime_ns >= 0 and info.st_mtime_ns != mtime_ns:  # -1: unknown
        return BlockUnavailable(409, f"the {what} {name} was modified since the scan", name)
    return None


def _read_checked(location: BlockLocation) -> bytes:
    """The block from its best copy: raw_block, else the CAR file, else the source file."""
    name = cid_to_str_safe(location.cid)
    stored = _stored_node(location, name)
    if stored is not None:
        if check_hash(location.cid, stored):
            return stored
        raise BlockUnavailable(409, f"the stored bytes of block {name} do not match its CID")
    if location.car_path is not None and location.car_storage_type == "local":
        offset = location.car_offset + location.header_length
        name = location.car_name or location.car_path.name
        return _read_file(location, location.car_path, offset, "CAR file", name)
    if location.source_path is not None and location.file_offset is not None:
        if location.source_storage_type != "local":
            raise BlockUnavailable(
                501,
                f"block {name} is only in a {location.source_storage_type!r} source, "
                "which is not served yet",
            )
        name = location.file_name or location.source_path.name
        return _read_file(location, location.source_path, location.file_offset, "source file", name)
    raise BlockUnavailable(
        501, f"block {name} has no stored bytes, CAR file or local source file to read it from"
    )


def _stored_node(location: BlockLocation, name: str) -> bytes | None:
    """The node bytes the row keeps (None: it keeps none); a damaged copy is a 409."""
    try:
        return node_bytes(location.raw_block, location.raw_block_zlib)
    except CorruptNode as exc:
        raise BlockUnavailable(409, f"block {name}: {exc}") from None


def _read_file(location: BlockLocation, path: Path, offset: int, what: str, name: str) -> bytes:
    """The block's bytes from a local file; errors name the file as the client may see it."""
    cid = cid_to_str_safe(location.cid)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BlockUnavailable(410, f"the {what} {name} no longer exists", name) from None
    except OSError as exc:
        message = f"the {what} {name} cannot be read: {exc.strerror or exc}"
        raise BlockUnavailable(409, message, name) from None
    try:
        data = os.pread(fd, location.data_length, offset)
    finally:
        os.close(fd)
    if len(data) != location.data_length or not check_hash(location.cid, data):
        raise BlockUnavailable(
            409,
            f"block {cid} read from the {what} {name} at offset {offset} does not match its "
            "CID: the file was changed, so it is not served",
            name,
        )
    return data
