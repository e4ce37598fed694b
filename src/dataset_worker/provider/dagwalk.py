"""Walks over prepared UnixFS DAGs for the gateway: CAR streams, path resolution, file bytes.

Everything reads blocks through a `BlockStore`, so every block used is hash-checked. Only the
dag-pb and raw codecs are produced by the preparations; a block of another codec has no links.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dataset_worker.content.car import car_header
from dataset_worker.content.cid import DAG_PB, RAW
from dataset_worker.content.dagpb import PBNode, decode_node
from dataset_worker.content.directory import read_directory_entries
from dataset_worker.content.unixfs import DataType, UnixFSData, decode_data
from dataset_worker.content.varint import decode_uvarint, encode_uvarint
from dataset_worker.provider.blocks import BlockLocation, BlockStore, cid_to_str_safe


class BadDag(Exception):
    """A stored block does not decode as the DAG needs it to (409: the data is wrong)."""


class PathNotFound(LookupError):
    """A path names no entry of the DAG (404)."""


def cid_codec(cid: bytes) -> int:
    """The CID's codec: dag-pb for a CIDv0 multihash, else the CIDv1 codec field."""
    if cid.startswith(b"\x12\x20"):
        return DAG_PB
    _version, pos = decode_uvarint(cid)
    codec, _ = decode_uvarint(cid, pos)
    return codec


def pb_node(cid: bytes, block: bytes) -> PBNode:
    """The decoded dag-pb node, BadDag if the block is not one."""
    try:
        return decode_node(block)
    except ValueError as exc:
        raise BadDag(f"block {cid_to_str_safe(cid)} is not a valid dag-pb node: {exc}") from None


def unixfs_of(cid: bytes, node: PBNode) -> UnixFSData:
    """The node's UnixFS Data, BadDag if it has none or it is malformed."""
    try:
        return decode_data(node.data or b"")
    except ValueError as exc:
        raise BadDag(f"block {cid_to_str_safe(cid)} has no valid UnixFS data: {exc}") from None


def links_of(cid: bytes, block: bytes) -> list[bytes]:
    """The CIDs a block links to, in link order (none for raw blocks)."""
    if cid_codec(cid) != DAG_PB:
        return []
    return [link.cid for link in pb_node(cid, block).links]


def car_section(cid: bytes, block: bytes) -> bytes:
    """One CARv1 section: varint length, CID, block."""
    return encode_uvarint(len(cid) + len(block)) + cid + block


def stream_car(store: BlockStore, header_root: bytes, target: Resolved) -> Iterator[bytes]:
    """A CARv1 with `header_root`: the blocks of the path to the target, then the DAG under it
    depth first, every block once. A node's children are located in one query, read one at a
    time."""
    root, root_block = target.cid, target.block
    prefix = target.visited[:-1]  # the target itself is the first block of the walk below
    yield car_header(header_root)
    seen: set[bytes] = set()
    for cid, block in prefix:
        if cid not in seen:
            seen.add(cid)
            yield car_section(cid, block)
    located: dict[bytes, list[BlockLocation]] = {}
    stack: list[tuple[bytes, bytes | None]] = [(root, root_block)]
    while stack:
        cid, known = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        block = known if known is not None else store.get(cid, located.pop(cid, None))
        yield car_section(cid, block)
        children = [child for child in links_of(cid, block) if child not in seen]
        missing = [child for child in children if child not in located]
        located.update(store.locate(missing))
        stack.extend((child, None) for child in reversed(children))


@dataclass
class Resolved:
    """The block a path leads to, and every block read on the way (for a CAR of the path)."""

    cid: bytes
    block: bytes
    visited: list[tuple[bytes, bytes]] = field(default_factory=list)


def resolve_path(store: BlockStore, root: bytes, segments: list[str]) -> Resolved:
    """Follow directory entries from `root`; PathNotFound when a name is missing."""
    visited: list[tuple[bytes, bytes]] = []

    def get_block(cid: bytes) -> bytes:
        data = store.get(cid)
        visited.append((cid, data))
        return data

    cid, walked = root, ""
    block = get_block(root)
    for name in segments:
        entries = directory_entries(cid, block, get_block, walked)
        if name not in entries:
            raise PathNotFound(f'no entry "{name}" in the directory "/{walked}"')
        cid = entries[name][0]
        walked = f"{walked}/{name}" if walked else name
        block = get_block(cid)
    return Resolved(cid, block, visited)


def directory_entries(
    cid: bytes, block: bytes, get_block: Callable[[bytes], bytes], walked: str = ""
) -> dict[str, tuple[bytes, int]]:
    """A basic or HAMT directory's entries; PathNotFound when the block is not a directory."""
    if cid_codec(cid) != DAG_PB or unixfs_of(cid, pb_node(cid, block)).type not in (
        DataType.DIRECTORY,
        DataType.HAMT_SHARD,
    ):
        raise PathNotFound(f'"/{walked}" is a file, not a directory')
    cached = {cid: block}
    try:
        return read_directory_entries(cid, lambda c: cached.pop(c, None) or get_block(c))
    except ValueError as exc:
        raise BadDag(f"directory {cid_to_str_safe(cid)} is malformed: {exc}") from None


def is_directory(cid: bytes, block: bytes) -> bool:
    """True for a dag-pb basic or HAMT directory."""
    if cid_codec(cid) != DAG_PB:
        return False
    kind = unixfs_of(cid, pb_node(cid, block)).type
    return kind in (DataType.DIRECTORY, DataType.HAMT_SHARD)


def file_size(cid: bytes, block: bytes) -> int:
    """The bytes in a file: a raw block's length, or a UnixFS file node's filesize."""
    codec = cid_codec(cid)
    if codec == RAW:
        return len(block)
    if codec != DAG_PB:
        raise BadDag(f"block {cid_to_str_safe(cid)} has codec {codec:#x}, not a UnixFS file")
    meta = unixfs_of(cid, pb_node(cid, block))
    if meta.type not in (DataType.FILE, DataType.RAW):
        raise BadDag(f"block {cid_to_str_safe(cid)} is a UnixFS {meta.type.name}, not a file")
    if meta.filesize is not None:
        return meta.filesize
    return len(meta.data or b"") + sum(meta.blocksizes)


def file_bytes(
    store: BlockStore, cid: bytes, block: bytes, start: int, stop: int
) -> Iterator[bytes]:
    """The file's bytes from `start` to `stop` (exclusive), leaf by leaf; only leaves that
    overlap the range are read."""
    if start >= stop:
        return
    if cid_codec(cid) == RAW:
        yield block[start:stop]
        return
    node = pb_node(cid, block)
    meta = unixfs_of(cid, node)
    if meta.type not in (DataType.FILE, DataType.RAW):
        raise BadDag(f"block {cid_to_str_safe(cid)} is a UnixFS {meta.type.name} inside a file")
    if len(meta.blocksizes) != len(node.links):
        raise BadDag(
            f"file node {cid_to_str_safe(cid)} has {len(node.links)} links but "
            f"{len(meta.blocksizes)} blocksizes"
        )
    inline = meta.data or b""
    if inline[start:stop]:
        yield inline[start:stop]
    position = len(inline)
    for link, size in zip(node.links, meta.blocksizes, strict=True):
        if position + size > start and position < stop:
            child = store.get(link.cid)
            yield from file_bytes(
                store, link.cid, child, max(start - position, 0), min(stop - position, size)
            )
        position += size


def file_leaves(store: BlockStore, cid: bytes, block: bytes, start: int, stop: int) -> list[bytes]:
    """The CIDs of the leaves `file_bytes` will read for bytes `start` to `stop`, found by
    reading only the file's inner nodes (small, usually stored in the database)."""
    if start >= stop or cid_codec(cid) == RAW:
        return []
    node = pb_node(cid, block)
    meta = unixfs_of(cid, node)
    if meta.type not in (DataType.FILE, DataType.RAW) or len(meta.blocksizes) != len(node.links):
        return []  # file_bytes reports it
    leaves: list[bytes] = []
    position = len(meta.data or b"")
    for link, size in zip(node.links, meta.blocksizes, strict=True):
        if position + size > start and position < stop:
            if cid_codec(link.cid) == RAW:
                leaves.append(link.cid)
            else:
                child = store.get(link.cid)
                leaves += file_leaves(
                    store, link.cid, child, max(start - position, 0), min(stop - position, size)
                )
        position += size
    return leaves
