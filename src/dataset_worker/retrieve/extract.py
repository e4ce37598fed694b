"""Rebuilding the files and folders under a root directory CID from CAR files.

Two passes. The plan walks every directory (basic and HAMT) and every file DAG without reading
file data (a leaf's length comes from the index) and refuses hostile or broken input before
anything is written: unsafe names (`/`, `..`, `.`, NUL, empty), duplicate names, cycles, declared
sizes that disagree with the blocks, missing blocks, unsupported node kinds. The write then creates
the folders and writes each file to a temporary name that is renamed into place once complete,
every block checked against its CID as it is read. All writes go through directory descriptors
opened without following symbolic links, so nothing lands outside the output folder even if it
already holds links.

Before the first write, the plan is also held to limits: at most `max_files` files and folders
and `max_bytes` bytes (a few MB of CAR can describe 100,000 empty files), no more than the free
space, and every name and path within the output file system's NAME_MAX and PATH_MAX, so a tree
is never left half written by a name the file system refuses.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dataset_worker.content.cid import DAG_PB, RAW
from dataset_worker.content.dagpb import PBNode, decode_node
from dataset_worker.content.hamt import MAX_DEPTH as MAX_HAMT_DEPTH
from dataset_worker.content.unixfs import (
    HAMT_FANOUT,
    HAMT_HASH_MURMUR3,
    DataType,
    UnixFSData,
    decode_data,
)
from dataset_worker.retrieve.carindex import (
    BlockIndex,
    ExtractError,
    MissingBlock,
    describe,
    parse_cid,
)

MAX_FILE_DEPTH = 64  # nesting of file nodes; Singularity's files need at most 4 levels
DEFAULT_MAX_FILES = 10_000_000  # files and folders: generous, but a bound
DEFAULT_MAX_BYTES = 1 << 50  # 1 PiB: the free space is the real limit, checked too
PATH_MAX = 4096  # Linux: used when the file system does not say
MAX_TREE_DEPTH = 1024  # nested folders
_HEX = frozenset(b"0123456789ABCDEF")
_TEMP_PREFIX = ".dw-extract-"

Parts = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlannedDir:
    """A folder to create (`parts` empty for the output folder itself)."""

    parts: Parts


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """A file to write: its root CID and its size as its blocks say."""

    parts: Parts
    cid: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Unrestorable:
    """An entry left out of a partial extraction: a block it needs is in none of the CARs."""

    parts: Parts
    reason: str


Planned = PlannedDir | PlannedFile | Unrestorable


@dataclass(frozen=True)
class ExtractSummary:
    """What an extraction wrote, and (partial extraction) what it could not: (path, reason)."""

    files: int
    directories: int
    bytes: int
    unrestored: tuple[tuple[str, str], ...] = ()


def show(parts: Parts) -> str:
    """A path for messages, quoted so control characters in hostile names stay visible."""
    return repr("/".join(parts)) if parts else "the root directory"


def _node(index: BlockIndex, cid: bytes, where: Parts) -> tuple[PBNode, UnixFSData]:
    """Decode a dag-pb UnixFS node; ExtractError names the block and the path."""
    try:
        node = decode_node(index.get(cid))
        if node.data is None:
            raise ValueError("no UnixFS Data field")
        return node, decode_data(node.data)
    except ValueError as exc:
        raise ExtractError(
            f"{show(where)}: block {describe(cid)} is not a UnixFS node: {exc}"
        ) from None


def _kind(index: BlockIndex, cid: bytes, where: Parts) -> DataType:
    """FILE for file data (raw leaves too) or DIRECTORY for both kinds of directory."""
    codec = parse_cid(cid).codec
    if codec == RAW:
        return DataType.FILE
    if codec != DAG_PB:
        raise ExtractError(f"{show(where)}: block {describe(cid)} has codec 0x{codec:x}")
    kind = _node(index, cid, where)[1].type
    if kind in (DataType.FILE, DataType.RAW):
        return DataType.FILE
    if kind in (DataType.DIRECTORY, DataType.HAMT_SHARD):
        return DataType.DIRECTORY
    raise ExtractError(f"{show(where)}: a UnixFS {kind.name.lower()} node is not extracted")


def _checked_name(raw: bytes, where: Parts) -> str:
    """An entry name that is safe as one path component, or ExtractError saying why not."""
    problem = None
    if not raw:
        problem = "is empty"
    elif raw.startswith(b"/"):
        problem = "is an absolute path"
    elif b"/" in raw:
        problem = 'contains "/"'
    elif b"\x00" in raw:
        problem = "contains a NUL byte"
    elif raw in (b".", b".."):
        problem = "is a relative path component"
    if problem is not None:
        raise ExtractError(f"{show(where)}: entry name {raw!r} {problem}: refusing to extract")
    return raw.decode("utf-8", "surrogateescape")


def directory_entries(index: BlockIndex, cid: bytes, where: Parts) -> list[tuple[str, bytes]]:
    """(name, CID) of a basic or HAMT directory's entries, names checked, sorted by name."""
    node, data = _node(index, cid, where)
    raw_entries: list[tuple[bytes, bytes]] = []
    if data.type is DataType.DIRECTORY:
        raw_entries = [(link.name, link.cid) for link in node.links]
    elif data.type is DataType.HAMT_SHARD:
        raw_entries = _hamt_entries(index, cid, node, data, where)
    else:
        raise ExtractError(f"{show(where)}: block {describe(cid)} is not a directory")
    entries: dict[str, bytes] = {}
    for raw, child in raw_entries:
        name = _checked_name(raw, where)
        if name in entries:
            raise ExtractError(f"{show(where)}: two entries are named {raw!r}")
        entries[name] = child
    return sorted(entries.items(), key=lambda item: item[0].encode("utf-8", "surrogateescape"))


def _hamt_entries(
    index: BlockIndex, cid: bytes, root: PBNode, data: UnixFSData, where: Parts
) -> list[tuple[bytes, bytes]]:
    if data.fanout != HAMT_FANOUT or data.hash_type != HAMT_HASH_MURMUR3:
        raise ExtractError(
            f"{show(where)}: HAMT directory {describe(cid)} has fanout {data.fanout} and hash "
            f"0x{data.hash_type or 0:x}; only fanout {HAMT_FANOUT} with murmur3 is supported"
        )
    found: list[tuple[bytes, bytes]] = []
    pending = [(root, 1)]
    seen = {cid}
    while pending:
        shard, depth = pending.pop()
        for link in shard.links:
            if len(link.name) < 2 or not set(link.name[:2]) <= _HEX:
                raise ExtractError(f"{show(where)}: bad HAMT link name {link.name!r}")
            if len(link.name) > 2:
                found.append((link.name[2:], link.cid))
                continue
            if depth >= MAX_HAMT_DEPTH:  # deeper is malformed, or a cycle of shards
                raise ExtractError(f"{show(where)}: HAMT deeper than {MAX_HAMT_DEPTH} levels")
            # Every shard of a real HAMT covers its own hash prefix, so one shard linked twice
            # is crafted: 8 such levels would make 256^8 entries out of 8 blocks.
            if link.cid in seen:
                raise ExtractError(
                    f"{show(where)}: HAMT shard {describe(link.cid)} is linked twice"
                )
            seen.add(link.cid)
            child, child_data = _node(index, link.cid, where)
            if child_data.type is not DataType.HAMT_SHARD:
                raise ExtractError(f"{show(where)}: HAMT link {link.name!r} is not a shard")
            pending.append((child, depth + 1))
    return found


def checked_size(
    index: BlockIndex,
    cid: bytes,
    where: Parts,
    known: dict[bytes, int],
    ancestors: tuple[bytes, ...] = (),
) -> int:
    """A file's length with every declared size checked against its blocks; no leaf is read.

    Lengths already checked are remembered by CID in `known`, so a DAG that links one node many
    times (a "bomb" whose sizes all agree) costs one visit per distinct node.
    """
    if cid in known:
        return known[cid]
    if parse_cid(cid).codec == RAW:
        known[cid] = index.length(cid)
        return known[cid]
    if cid in ancestors:
        raise ExtractError(f"{show(where)}: file node {describe(cid)} links to itself (a cycle)")
    if len(ancestors) >= MAX_FILE_DEPTH:
        raise ExtractError(f"{show(where)}: file DAG deeper than {MAX_FILE_DEPTH} levels")
    node, data = _file_node(index, cid, where)
    if len(data.blocksizes) != len(node.links):
        raise ExtractError(
            f"{show(where)}: file node {describe(cid)} declares {len(data.blocksizes)} block "
            f"sizes for {len(node.links)} links"
        )
    total = len(data.data or b"")
    for link, declared in zip(node.links, data.blocksizes, strict=True):
        got = checked_size(index, link.cid, where, known, (*ancestors, cid))
        if got != declared:
            raise ExtractError(
                f"{show(where)}: block {describe(link.cid)} holds {got} bytes but its parent "
                f"declares {declared}"
            )
        total += got
    if data.filesize is not None and data.filesize != total:
        raise ExtractError(
            f"{show(where)}: file node {describe(cid)} declares {data.filesize} bytes but its "
            f"blocks hold {total}"
        )
    known[cid] = total
    return total


def _file_node(index: BlockIndex, cid: bytes, where: Parts) -> tuple[PBNode, UnixFSData]:
    node, data = _node(index, cid, where)
    if data.type not in (DataType.FILE, DataType.RAW):
        raise ExtractError(
            f"{show(where)}: block {describe(cid)} is a {data.type.name.lower()} inside a file"
        )
    return node, data


def file_chunks(index: BlockIndex, cid: bytes, where: Parts) -> Iterator[bytes]:
    """A checked file's bytes in order (`checked_size` first), each block verified as read."""
    if parse_cid(cid).codec == RAW:
        yield index.get(cid)
        return
    node, data = _file_node(index, cid, where)
    if data.data:
        yield data.data
    for link in node.links:
        yield from file_chunks(index, link.cid, where)


def plan_tree(index: BlockIndex, root: bytes, *, partial: bool = False) -> list[Planned]:
    """Every folder and file under `root`, folders before their content; nothing is written.

    A missing block raises MissingBlock naming the entry that needs it; with `partial`, that
    entry (a file, or a folder whose listing is incomplete) is planned as Unrestorable instead.
    """
    if _kind(index, root, ()) is not DataType.DIRECTORY:
        raise ExtractError(
            f"the root {describe(root)} is a file, not a directory: give the dataset's root CID"
        )
    plan: list[Planned] = [PlannedDir(())]
    known: dict[bytes, int] = {}
    stack: list[tuple[Parts, bytes, tuple[bytes, ...]]] = [((), root, (root,))]
    while stack:
        parts, cid, ancestors = stack.pop()
        try:
            entries = directory_entries(index, cid, parts)
        except MissingBlock as exc:
            plan.append(_unrestorable(parts, exc, partial))
            continue
        for name, child in entries:
            path = (*parts, name)
            try:
                if _kind(index, child, path) is DataType.FILE:
                    plan.append(PlannedFile(path, child, checked_size(index, child, path, known)))
                    continue
            except MissingBlock as exc:
                plan.append(_unrestorable(path, exc, partial))
                continue
            if child in ancestors:
                raise ExtractError(
                    f"{show(path)}: directory {describe(child)} contains itself (a cycle)"
                )
            if len(path) > MAX_TREE_DEPTH:
                raise ExtractError(f"{show(path)}: folders nested deeper than {MAX_TREE_DEPTH}")
            plan.append(PlannedDir(path))
            stack.append((path, child, (*ancestors, child)))
    return plan


def _unrestorable(parts: Parts, exc: MissingBlock, partial: bool) -> Unrestorable:
    """The entry left out of a partial extraction; without `partial`, the error naming it."""
    if not partial:
        raise MissingBlock(f"{show(parts)} needs a missing block: {exc}") from None
    return Unrestorable(parts, str(exc))


class _Output:
    """Creates folders and files under one folder, never following a symbolic link in it."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._root = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._cached: tuple[Parts, int] | None = None

    def close(self) -> None:
        self._drop_cache()
        os.close(self._root)

    def _drop_cache(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _open_dir(self, parts: Parts) -> int:
        """A descriptor of folder `parts` (kept until another folder is asked for)."""
        if not parts:
            return self._root
        if self._cached is not None and self._cached[0] == parts:
            return self._cached[1]
        self._drop_cache()
        fd = os.dup(self._root)
        try:
            for depth, name in enumerate(parts):
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise ExtractError(
                        f"{show(parts[: depth + 1])} exists and is not a folder (a file or a "
                        f"symbolic link): refusing to write through it ({exc.strerror})"
                    ) from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        self._cached = (parts, fd)
        return fd

    def make_dir(self, parts: Parts) -> None:
        """Create folder `parts` (its parent exists); an existing real folder is fine."""
        if not parts:
            return
        parent = self._open_dir(parts[:-1])
        try:
            os.mkdir(parts[-1], 0o755, dir_fd=parent)
        except FileExistsError:
            pass
        self._open_dir(parts)  # refuses a symbolic link or a file in the way

    def write_file(self, parts: Parts, chunks: Iterator[bytes], size: int) -> None:
        """Write to a temporary name, then rename over `parts` once all `size` bytes are in."""
        parent = self._open_dir(parts[:-1])
        temp = f"{_TEMP_PREFIX}{secrets.token_hex(8)}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temp, flags, 0o644, dir_fd=parent)
        try:
            written = 0
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                    written += len(chunk)
            finally:
                os.close(fd)
            if written != size:
                raise ExtractError(f"{show(parts)}: wrote {written} bytes, the plan said {size}")
            try:
                os.replace(temp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
            except IsADirectoryError:
                raise ExtractError(f"{show(parts)}: a folder of that name is in the way") from None
        except BaseException:
            try:
                os.unlink(temp, dir_fd=parent)
            except FileNotFoundError:
                pass
            raise


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def extract_tree(
    index: BlockIndex,
    root: bytes,
    output: Path,
    *,
    on_bytes: Callable[[int], object] | None = None,
    partial: bool = False,
    max_files: int = DEFAULT_MAX_FILES,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ExtractSummary:
    """Rebuild the tree under `root` into `output`; ExtractError before writing for bad input
    (and for a tree over `max_files` files and folders or `max_bytes` bytes).

    With `partial`, entries that need a missing block are left out (listed in the summary) and
    every complete file is written."""
    plan = plan_tree(index, root, partial=partial)
    _check_limits(plan, max_files, max_bytes)
    _check_names(plan, output)
    _check_space(plan, output)
    out = _Output(output)
    files = directories = total = 0
    unrestored: list[tuple[str, str]] = []
    try:
        for item in plan:
            if isinstance(item, Unrestorable):
                unrestored.append(("/".join(item.parts) or ".", item.reason))
                continue
            if isinstance(item, PlannedDir):
                out.make_dir(item.parts)
                directories += 1 if item.parts else 0
                continue
            chunks = file_chunks(index, item.cid, item.parts)
            out.write_file(item.parts, _counted(chunks, on_bytes), item.size)
            files += 1
            total += item.size
    finally:
        out.close()
    return ExtractSummary(files, directories, total, tuple(sorted(unrestored)))


def _check_limits(plan: list[Planned], max_files: int, max_bytes: int) -> None:
    entries = len(plan) - 1  # the output folder itself is not counted
    if entries > max_files:
        raise ExtractError(
            f"the tree holds {entries} files and folders, more than --max-files {max_files}: "
            "refusing to start"
        )
    total = sum(item.size for item in plan if isinstance(item, PlannedFile))
    if total > max_bytes:
        raise ExtractError(
            f"the tree holds {total} bytes, more than --max-bytes {max_bytes}: refusing to start"
        )


def _check_names(plan: list[Planned], output: Path) -> None:
    """Every name within NAME_MAX and every path within PATH_MAX of the output's file system,
    naming the first entry that is not (an error half way would leave a partial tree)."""
    existing = _existing(output)
    name_max, path_max = _limit(existing, "PC_NAME_MAX", 255), _limit(existing, "PC_PATH_MAX", 0)
    path_max = path_max or PATH_MAX
    base = len(os.fsencode(output.absolute()))
    for item in plan:
        if not item.parts:
            continue
        name = os.fsencode(item.parts[-1])
        if len(name) > name_max:
            raise ExtractError(
                f"{show(item.parts)}: the name is {len(name)} bytes, longer than {output}'s file "
                f"system allows (NAME_MAX {name_max}): refusing to start"
            )
        length = base + sum(len(os.fsencode(part)) + 1 for part in item.parts)
        if length >= path_max:
            raise ExtractError(
                f"{show(item.parts)}: the path under {output} is {length} bytes, longer than the "
                f"system allows (PATH_MAX {path_max}): refusing to start"
            )


def _existing(output: Path) -> Path:
    existing = output
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def _limit(path: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(path, name)
    except (OSError, ValueError):
        return default
    return value if value > 0 else default


def _check_space(plan: list[Planned], output: Path) -> None:
    """Refuse a tree larger than the free space: a crafted DAG can claim terabytes."""
    total = sum(item.size for item in plan if isinstance(item, PlannedFile))
    free = shutil.disk_usage(_existing(output)).free
    if total > free:
        raise ExtractError(
            f"the tree holds {total} bytes but {output} has only {free} bytes free: "
            "refusing to start"
        )


def _counted(chunks: Iterator[bytes], on_bytes: Callable[[int], object] | None) -> Iterator[bytes]:
    for chunk in chunks:
        if on_bytes is not None:
            on_bytes(len(chunk))
        yield chunk
