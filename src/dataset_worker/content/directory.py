"""UnixFS directory nodes as Singularity builds them with boxo v0.35.0 (docs/formats.md#directories, docs/formats.md#hamt-shards).

A directory is a basic node (links sorted by name bytes, Data `08 01`) until the estimate
Σ(len(name) + len(CID)) reaches 256 KiB; from there on it is a HAMT. Singularity never removes
entries, so the final set of entries alone decides which one it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dataset_worker.content._multiformats import pb_links
from dataset_worker.content.dagpb import decode_node, encode_records, node_cid
from dataset_worker.content.hamt import MAX_DEPTH, build_hamt
from dataset_worker.content.unixfs import DIRECTORY_DATA, DataType, decode_data

HAMT_SHARDING_SIZE = 262144  # boxo HAMTShardingSize (256 KiB)
_SHARD_LINK_NAME_LENGTH = 2  # a HAMT link named by the 2-hex-digit prefix alone is a child shard

Entries = Mapping[str, tuple[bytes, int]]
SortedLinks = list[tuple[bytes, bytes, int]] | list[tuple[bytes, bytes, int, Any]]
"""Links (name bytes, CID, Tsize, and anything after) sorted by name bytes."""


@dataclass(frozen=True, slots=True)
class DirectoryNode:
    """A built directory.

    `size` is boxo's `Size()` of the root (block length + Σ its own link Tsizes; cumulative for a
    HAMT); it is the Tsize a parent directory gives this one. `blocks` are the directory's own
    (cid, block) nodes, the root last: one for a basic directory, every shard for a HAMT.
    """

    cid: bytes
    size: int
    blocks: list[tuple[bytes, bytes]]
    is_hamt: bool

    @property
    def block(self) -> bytes:
        """The root node's block."""
        return self.blocks[-1][1]


def name_bytes(name: str) -> bytes:
    """Entry name as the raw bytes Go would hold; undecodable file-name bytes round-trip."""
    return name.encode("utf-8", "surrogateescape")


def estimated_size(entries: Entries) -> int:
    """boxo's sharding estimate: Σ over entries of len(name bytes) + len(CID bytes)."""
    return sum(len(name_bytes(name)) + len(cid) for name, (cid, _) in entries.items())


def needs_hamt(entries: Entries) -> bool:
    """Whether boxo v0.35.0 would have switched this directory to a HAMT (`>=`, not `>`)."""
    return estimated_size(entries) >= HAMT_SHARDING_SIZE


def build_directory(entries: Entries, *, cid_version: int = 1) -> DirectoryNode:
    """The directory node(s) for entries name → (CID, Tsize), basic or HAMT by the estimate."""
    if needs_hamt(entries):
        return build_hamt_directory(entries, cid_version=cid_version)
    return build_basic_directory(entries, cid_version=cid_version)


def build_basic_directory(entries: Entries, *, cid_version: int = 1) -> DirectoryNode:
    """A single UnixFS Directory node, whatever its size."""
    links = sorted([(name_bytes(name), cid, tsize) for name, (cid, tsize) in _checked(entries)])
    return basic_directory_from_links(links, cid_version=cid_version)


def directory_from_links(links: SortedLinks, *, cid_version: int = 1) -> DirectoryNode:
    """`build_directory` of links (name bytes, CID, Tsize, …) already sorted by name bytes."""
    # A HAMT, or an empty name (sorted first), which build_directory refuses in its own words.
    if (links and not links[0][0]) or _estimate(links) >= HAMT_SHARDING_SIZE:
        return build_directory(_as_entries(links), cid_version=cid_version)
    try:
        return basic_directory_from_links(links, cid_version=cid_version)
    except OverflowError:  # a negative Tsize: build_directory's error names the entry
        return build_directory(_as_entries(links), cid_version=cid_version)


def _estimate(links: SortedLinks) -> int:
    """`estimated_size` of sorted links."""
    return sum([len(link[0]) + len(link[1]) for link in links])


def _as_entries(links: SortedLinks) -> dict[str, tuple[bytes, int]]:
    return {link[0].decode("utf-8", "surrogateescape"): (link[1], link[2]) for link in links}


def basic_directory_from_links(links: SortedLinks, *, cid_version: int = 1) -> DirectoryNode:
    """A single UnixFS Directory node from links (name bytes, CID, Tsize, …) already sorted by
    name bytes, as encode_node sorts them, with non-empty names and Tsizes of 0 or more.

    Every pack job rebuilds the folders it adds to, a link per file of a tiny-file dataset, so
    the links are encoded in one native call (`pb_links`) rather than one record at a time.
    """
    block = encode_records([pb_links(links)], DIRECTORY_DATA)
    cid = node_cid(block, cid_version)
    size = len(block) + sum([link[2] for link in links])
    return DirectoryNode(cid, size, [(cid, block)], False)


def build_hamt_directory(entries: Entries, *, cid_version: int = 1) -> DirectoryNode:
    """A HAMT-sharded directory (fanout 256), whatever its size."""
    raw = {name_bytes(name): value for name, value in _checked(entries)}
    hamt = build_hamt(raw, cid_version=cid_version)
    return DirectoryNode(hamt.cid, hamt.size, hamt.blocks, True)


def _checked(entries: Entries) -> list[tuple[str, tuple[bytes, int]]]:
    items = list(entries.items())
    for name, (_cid, tsize) in items:
        if not name:
            raise ValueError("directory entry name must not be empty")
        if tsize < 0:
            raise ValueError(f"directory entry {name!r}: Tsize must not be negative, got {tsize}")
    return items


def read_directory_entries(
    root_cid: bytes, get_block: Callable[[bytes], bytes]
) -> dict[str, tuple[bytes, int]]:
    """Entries name → (CID, Tsize) of a stored basic or HAMT directory; `get_block` maps a
    CID to its block (it is asked for the root and, for a HAMT, every shard)."""
    entries: dict[str, tuple[bytes, int]] = {}
    root = decode_node(get_block(root_cid))
    kind = decode_data(root.data or b"").type
    if kind is DataType.DIRECTORY:
        for link in root.links:
            entries[link.name.decode("utf-8", "surrogateescape")] = (link.cid, link.tsize)
        return entries
    if kind is not DataType.HAMT_SHARD:
        raise ValueError(f"not a directory: UnixFS type {kind.name}")
    pending = [(root, 1)]
    while pending:
        shard, depth = pending.pop()
        for link in shard.links:
            if len(link.name) == _SHARD_LINK_NAME_LENGTH:
                # One level per byte of the name's hash: a deeper (or cyclic) HAMT is malformed,
                # and would otherwise be walked without end.
                if depth >= MAX_DEPTH:
                    raise ValueError(f"HAMT directory deeper than {MAX_DEPTH} levels")
                pending.append((decode_node(get_block(link.cid)), depth + 1))
            else:
                name = link.name[_SHARD_LINK_NAME_LENGTH:].decode("utf-8", "surrogateescape")
                entries[name] = (link.cid, link.tsize)
    return entries
