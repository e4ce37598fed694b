"""Walking a UnixFS tree out of CAR files: a block index, the directory walk, file rebuilding,
and the comparison of every rebuilt file with the source storage.

Blocks are indexed by position, not held in memory, so large outputs can be checked too.
Only the dag-pb/UnixFS decoders are used, never the code that wrote the DAG.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dataset_worker.content.cid import DAG_PB, RAW, cid_to_str
from dataset_worker.content.dagpb import decode_node
from dataset_worker.content.directory import read_directory_entries
from dataset_worker.content.unixfs import DataType, decode_data
from dataset_worker.storage import SourceEntry, SourceStorage, StorageError
from dataset_worker.verify.car import Section, hash_problem, scan_car
from dataset_worker.verify.report import Problem

READ_SIZE = 4 << 20


class SelfCheckError(Exception):
    """The output does not reproduce the source."""


class MissingBlockError(SelfCheckError):
    """A block the tree needs is in none of the CARs (or only in a damaged form)."""

    def __init__(self, cid: bytes, message: str) -> None:
        super().__init__(message)
        self.cid = cid


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
    damaged: set[bytes] = field(default_factory=set)
    _fds: dict[Path, int] = field(default_factory=dict)

    def close(self) -> None:
        """Close the CAR files opened by `get`."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def add_car(self, path: Path) -> int:
        """Read a CAR, check every block's hash; returns the number of blocks."""
        count = 0

        def take(section: Section) -> None:
            nonlocal count
            reason = hash_problem(section.cid, section.data)
            if reason is not None:
                raise SelfCheckError(f"{path}: block {cid_to_str(section.cid)}: {reason}")
            self.add_block(path, section)
            count += 1

        self.roots[path] = scan_car(path, take)
        return count

    def add_block(self, car: Path, section: Section) -> None:
        """Index a block whose hash was checked (the first CAR holding a CID wins)."""
        self.index.setdefault(section.cid, _Where(car, section.data_offset, len(section.data)))

    def get(self, cid: bytes) -> bytes:
        """The data of block `cid`; MissingBlockError if no CAR holds it intact."""
        where = self.index.get(cid)
        if where is None:
            why = "fails its hash check" if cid in self.damaged else "is in none of the CARs"
            raise MissingBlockError(cid, f"block {cid_to_str(cid)} {why}")
        fd = self._fds.get(where.car)
        if fd is None:
            fd = self._fds[where.car] = os.open(where.car, os.O_RDONLY)
        data = os.pread(fd, where.length, where.offset)
        if len(data) != where.length:  # the file shrank since it was indexed
            raise MissingBlockError(cid, f"block {cid_to_str(cid)}: {where.car} is truncated")
        return data


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


def _is_directory(store: BlockStore, cid: bytes) -> bool:
    if cid[1] != DAG_PB:
        return False
    kind = decode_data(decode_node(store.get(cid)).data or b"").type
    return kind in (DataType.DIRECTORY, DataType.HAMT_SHARD)


def walk_tree(store: BlockStore, root: bytes, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    """(path, file CID) of every file below directory `root`."""
    entries = read_directory_entries(root, store.get)
    for name in sorted(entries):
        cid, _tsize = entries[name]
        path = f"{prefix}{name}"
        if _is_directory(store, cid):
            yield from walk_tree(store, cid, path + "/")
            continue
        yield path, cid


def walk_tree_reporting(
    store: BlockStore, root: bytes, problems: list[Problem]
) -> Iterator[tuple[str, bytes]]:
    """Like `walk_tree`, but a directory that cannot be read becomes a problem, not an error."""
    pending: list[tuple[str, bytes]] = [("", root)]
    while pending:
        prefix, cid = pending.pop()
        where = prefix.rstrip("/") or "/"
        try:
            entries = read_directory_entries(cid, store.get)
        except (SelfCheckError, ValueError) as exc:
            problems.append(_tree_problem(f"directory {where} cannot be read: {exc}", cid, where))
            continue
        subdirectories: list[tuple[str, bytes]] = []
        for name in sorted(entries):
            child, _tsize = entries[name]
            path = f"{prefix}{name}"
            if "/" in name or name in ("", ".", ".."):
                problems.append(_tree_problem(f"invalid entry name {name!r}", child, path))
                continue
            try:
                is_directory = _is_directory(store, child)
            except (SelfCheckError, ValueError) as exc:
                problems.append(_tree_problem(f"entry {path} cannot be read: {exc}", child, path))
                continue
            if is_directory:
                subdirectories.append((path + "/", child))
            else:
                yield path, child
        pending.extend(reversed(subdirectories))  # depth first, in name order


def _tree_problem(message: str, cid: bytes, path: str) -> Problem:
    return Problem("dag-structure", message, block_cid=cid_to_str(cid), file_path=path)


@dataclass
class TreeComparison:
    """Outcome of `compare_with_source`."""

    files: int = 0
    skipped: int = 0
    bytes_compared: int = 0
    problems: list[Problem] = field(default_factory=list)


def compare_with_source(
    store: BlockStore,
    root: bytes,
    source: SourceStorage,
    *,
    source_may_be_gone: bool = False,
    progress_total: Callable[[int], object] | None = None,
    progress: Callable[[int], object] | None = None,
) -> TreeComparison:
    """Rebuild every file below `root`, compare its SHA-256 with the source file's.

    A file in only one of the two is a problem, except a DAG file missing from a source whose
    files are deleted after export (`source_may_be_gone`): that one is counted as skipped.
    """
    result = TreeComparison()
    listed = _list_source(source, result.problems)
    if progress_total is not None:
        progress_total(sum(entry.size for entry in listed.values()))
    seen: set[str] = set()
    for path, cid in walk_tree_reporting(store, root, result.problems):
        seen.add(path)
        entry = listed.get(path)
        if entry is None:
            if source_may_be_gone:
                result.skipped += 1
            else:
                result.problems.append(
                    Problem(
                        "file-not-in-source",
                        f"{path} is in the DAG but not in the source {source.describe()}",
                        block_cid=cid_to_str(cid),
                        file_path=path,
                    )
                )
            continue
        result.files += 1
        problem = _compare_file(store, cid, source, entry, progress)
        if problem is not None:
            result.problems.append(problem)
        else:
            result.bytes_compared += entry.size
    for path in sorted(set(listed) - seen):
        result.problems.append(
            Problem(
                "file-not-in-dag",
                f"{path} is in the source {source.describe()} but not in the DAG",
                file_path=path,
            )
        )
    return result


def _list_source(source: SourceStorage, problems: list[Problem]) -> dict[str, SourceEntry]:
    def on_error(path: str, exc: Exception) -> None:
        # Symbolic links, special files and non-UTF-8 names are skipped by the scan too
        # (StorageError); only a folder that cannot be listed hides files.
        if not isinstance(exc, StorageError):
            problems.append(
                Problem("source-unreadable", f"cannot list {path or '/'}: {exc}", file_path=path)
            )

    return {entry.path: entry for entry in source.walk(on_error) if not entry.is_dir}


def _compare_file(
    store: BlockStore,
    cid: bytes,
    source: SourceStorage,
    entry: SourceEntry,
    progress: Callable[[int], object] | None,
) -> Problem | None:
    path = entry.path
    rebuilt = hashlib.sha256()
    rebuilt_size = 0
    try:
        for chunk in iter_file_chunks(store, cid):
            rebuilt.update(chunk)
            rebuilt_size += len(chunk)
    except (SelfCheckError, ValueError) as exc:
        block = exc.cid if isinstance(exc, MissingBlockError) else cid
        return Problem(
            "file-unreadable",
            f"{path} cannot be rebuilt from the DAG: {exc}",
            block_cid=cid_to_str(block),
            file_path=path,
        )
    original = hashlib.sha256()
    original_size = 0
    try:
        stream = source.open_range(path, 0, size=entry.size, mtime_ns=entry.mtime_ns)
        try:
            buffer = bytearray(READ_SIZE)
            view = memoryview(buffer)
            while n := stream.readinto(view):
                original.update(view[:n])
                original_size += n
                if progress is not None:
                    progress(n)
        finally:
            stream.close()
    except (OSError, StorageError) as exc:
        return Problem(
            "source-unreadable", f"cannot read {path} from the source: {exc}", file_path=path
        )
    if rebuilt.digest() != original.digest():
        return Problem(
            "file-content",
            f"{path}: rebuilt from the DAG {rebuilt_size} bytes, sha256 {rebuilt.hexdigest()}; "
            f"the source has {original_size} bytes, sha256 {original.hexdigest()}",
            block_cid=cid_to_str(cid),
            file_path=path,
        )
    return None
