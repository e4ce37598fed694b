"""Independent read-back of a prepared dataset: CARs → blocks → the file tree, byte for byte.

It uses only the CAR reader and the dag-pb/UnixFS decoders, never the code that wrote the CARs:
every block is re-hashed against its CID, then the tree is walked from the root CID (basic and
HAMT directories, raw leaves and dag-pb file nodes) and each file is compared with the original.
Blocks are indexed by position, not held in memory, so large outputs can be checked too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dataset_worker.content.car import CarReader
from dataset_worker.content.cid import DAG_PB, RAW, cid_to_str
from dataset_worker.content.dagpb import decode_node
from dataset_worker.content.directory import read_directory_entries
from dataset_worker.content.unixfs import DataType, decode_data
from dataset_worker.content.varint import decode_uvarint


class SelfCheckError(Exception):
    """The output does not reproduce the source."""


@dataclass(frozen=True, slots=True)
class _Where:
    car: Path
    offset: int
    length: int


@dataclass
class BlockStore:
    """CID → where its data lies in which CAR, filled by `add_car` (which verifies hashes)."""

    index: dict[bytes, _Where] = field(default_factory=dict)
    roots: dict[Path, list[bytes]] = field(default_factory=dict)
    _fds: dict[Path, int] = field(default_factory=dict)

    def close(self) -> None:
        """Close the CAR files opened by `get`."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def add_car(self, path: Path) -> int:
        """Read a CAR, check every block's hash; returns the number of blocks."""
        count = 0
        with open(path, "rb") as stream:
            reader = CarReader(stream)
            self.roots[path] = reader.roots
            for block in reader:
                _check_hash(path, block.cid, block.data)
                data_offset = block.car_offset + _prefix_length(block.cid, len(block.data))
                self.index.setdefault(block.cid, _Where(path, data_offset, len(block.data)))
                count += 1
        return count

    def get(self, cid: bytes) -> bytes:
        """The data of block `cid`; SelfCheckError if no CAR holds it."""
        where = self.index.get(cid)
        if where is None:
            raise SelfCheckError(f"block {cid_to_str(cid)} is in none of the CARs")
        fd = self._fds.get(where.car)
        if fd is None:
            fd = self._fds[where.car] = os.open(where.car, os.O_RDONLY)
        return os.pread(fd, where.length, where.offset)


def _prefix_length(cid: bytes, data_length: int) -> int:
    total = len(cid) + data_length
    varint_length = 1
    while total >= 0x80:
        total >>= 7
        varint_length += 1
    return varint_length + len(cid)


def _check_hash(car: Path, cid: bytes, data: bytes) -> None:
    _version, pos = decode_uvarint(cid)
    codec, pos = decode_uvarint(cid, pos)
    hash_code, pos = decode_uvarint(cid, pos)
    _length, pos = decode_uvarint(cid, pos)
    if hash_code != 0x12 or codec not in (RAW, DAG_PB):
        raise SelfCheckError(f"{car}: unexpected CID kind {cid_to_str(cid)}")
    if hashlib.sha256(data).digest() != cid[pos:]:
        raise SelfCheckError(f"{car}: block {cid_to_str(cid)} does not hash to its CID")


def iter_file_chunks(store: BlockStore, cid: bytes) -> Iterator[bytes]:
    """The bytes of the UnixFS file `cid`, in order (raw leaves or dag-pb File nodes)."""
    if cid[1] == RAW:
        yield store.get(cid)
        return
    node = decode_node(store.get(cid))
    data = decode_data(node.data or b"")
    if data.type not in (DataType.FILE, DataType.RAW):
        raise SelfCheckError(f"{cid_to_str(cid)} is a {data.type.name}, expected a file")
    if len(data.blocksizes) != len(node.links):
        raise SelfCheckError(f"{cid_to_str(cid)}: blocksizes do not match its links")
    for link, size in zip(node.links, data.blocksizes, strict=True):
        produced = 0
        for chunk in iter_file_chunks(store, link.cid):
            produced += len(chunk)
            yield chunk
        if produced != size:
            raise SelfCheckError(f"{cid_to_str(link.cid)}: {produced} bytes, blocksize {size}")


def walk_tree(store: BlockStore, root: bytes, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    """(path, file CID) of every file below directory `root`."""
    entries = read_directory_entries(root, store.get)
    for name in sorted(entries):
        cid, _tsize = entries[name]
        path = f"{prefix}{name}"
        if cid[1] == DAG_PB:
            kind = decode_data(decode_node(store.get(cid)).data or b"").type
            if kind in (DataType.DIRECTORY, DataType.HAMT_SHARD):
                yield from walk_tree(store, cid, path + "/")
                continue
        yield path, cid


def verify_tree(cars: Iterable[Path], root: bytes, original: Path) -> int:
    """Check every CAR, rebuild every file under `root` and compare it with `original`.

    Files present in `original` but not in the tree fail the check, except empty files' parents
    being empty directories (those are never part of the DAG). Returns the number of files.
    """
    store = BlockStore()
    try:
        for car in cars:
            store.add_car(car)
        seen = _compare_files(store, root, original)
    finally:
        store.close()
    expected = {p.relative_to(original).as_posix() for p in original.rglob("*") if p.is_file()}
    missing = sorted(expected - seen)
    if missing:
        raise SelfCheckError(f"{len(missing)} files are missing from the DAG, e.g. {missing[:3]}")
    return len(seen)


def _compare_files(store: BlockStore, root: bytes, original: Path) -> set[str]:
    seen: set[str] = set()
    for path, cid in walk_tree(store, root):
        source = original / path
        if not source.is_file():
            raise SelfCheckError(f"{path} is in the DAG but not in {original}")
        with open(source, "rb") as stream:
            for chunk in iter_file_chunks(store, cid):
                if stream.read(len(chunk)) != chunk:
                    raise SelfCheckError(f"{path}: rebuilt bytes differ from the original")
            if stream.read(1):
                raise SelfCheckError(f"{path}: rebuilt file is shorter than the original")
        seen.add(path)
    return seen
