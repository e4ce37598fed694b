"""UnixFS HAMT-sharded directories exactly as boxo v0.35.0 builds them (docs/formats.md#hamt-shards).

The trie is canonical (it depends only on the final set of entries), so it is built from
scratch. Taken in the order of their names' hashes, the entries of any shard are a run that
shares the shard's hash prefix, so one pass over the sorted entries builds it: at each depth,
an entry alone in its slot becomes a link, and two or more entries that share a slot become a
child shard, finished (and its block handed on) before its parent. Memory holds the open shards
only, at most one per depth, so a directory of millions of entries streams from the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import mmh3

from dataset_worker.content.dagpb import encode_records, link_record, node_cid
from dataset_worker.content.unixfs import HAMT_FANOUT, hamt_shard_data

MAX_DEPTH = 8  # one level per byte of the 64-bit hash, for fanout 256
_LABELS = tuple(b"%02X" % slot for slot in range(HAMT_FANOUT))  # a link name's slot prefix

BlockSink = Callable[[bytes, bytes], None]
"""Called with (cid, block) for each shard once it is built: children before their parents."""


@dataclass(frozen=True, slots=True)
class HamtDirectory:
    """A sharded directory: root shard CID, boxo `Size()` of the root, all shard blocks.

    `blocks` are (cid, block) pairs, children before their parents, the root shard last.
    """

    cid: bytes
    size: int
    blocks: list[tuple[bytes, bytes]]


class HashedEntry(NamedTuple):
    """One directory entry with its name's hash (`hamt_hash(name)`), the order shards need."""

    hash: bytes
    name: bytes
    cid: bytes
    tsize: int


def hamt_hash(name: bytes) -> bytes:
    """boxo's murmur3 `Sum(nil)`: MurmurHash3 x64 128, seed 0, first half h1, big-endian."""
    # hash_bytes is the 128-bit digest as h1 then h2, each little-endian: reverse h1's 8 bytes.
    digest: bytes = mmh3.hash_bytes(name)
    return digest[7::-1]


def bitfield_bytes(slots: int) -> bytes:
    """go-bitfield `Bytes()`: the slot set as a big-endian integer, leading zero bytes dropped."""
    return slots.to_bytes(HAMT_FANOUT // 8, "big").lstrip(b"\x00")


def build_hamt(
    entries: Mapping[bytes, tuple[bytes, int]], *, cid_version: int = 1
) -> HamtDirectory:
    """Build the HAMT for entries name (raw bytes) → (CID, Tsize), all in memory.

    `cid_version` 0 reproduces boxo's bare `hamt.NewShard` test vectors; Singularity uses 1.
    """
    items = sorted(
        HashedEntry(hamt_hash(name), name, cid, tsize) for name, (cid, tsize) in entries.items()
    )
    blocks: list[tuple[bytes, bytes]] = []
    root = stream_hamt(items, lambda cid, block: blocks.append((cid, block)), cid_version)
    if root is None:  # no entries: boxo's empty shard
        block = encode_records([], hamt_shard_data(bitfield_bytes(0)))
        root = (node_cid(block, cid_version), len(block))
        blocks.append((root[0], block))
    return HamtDirectory(root[0], root[1], blocks)


def stream_hamt(
    entries: Iterable[HashedEntry], sink: BlockSink | None = None, cid_version: int = 1
) -> tuple[bytes, int] | None:
    """(root CID, root `Size()`) of the HAMT of `entries`, which must come sorted by hash.

    Each shard block goes to `sink` as soon as it is built; None if there are no entries.
    ValueError if the entries are out of order or two names share all 8 hash bytes.
    """
    cursor = _Cursor(iter(entries))
    if cursor.current is None:
        return None
    root = _shard(cursor, 0, sink, cid_version)
    if cursor.current is not None:
        raise ValueError("HAMT entries are not sorted by hash")
    return root


class _Cursor:
    """The sorted entries with one entry of lookahead: a slot holds one entry or a child shard
    depending on whether the next entry shares its prefix."""

    def __init__(self, entries: Iterator[HashedEntry]) -> None:
        self._entries = entries
        self.current: HashedEntry | None = next(entries, None)
        self.following: HashedEntry | None = None
        self._check(next(entries, None))

    def advance(self) -> None:
        self.current = self.following
        self._check(next(self._entries, None))

    def _check(self, following: HashedEntry | None) -> None:
        if following is not None and self.current is not None:
            if following.hash < self.current.hash:
                raise ValueError("HAMT entries are not sorted by hash")
        self.following = following


def _shard(
    cursor: _Cursor, depth: int, sink: BlockSink | None, cid_version: int
) -> tuple[bytes, int]:
    """Build the shard whose entries share the current entry's first `depth` hash bytes."""
    first = cursor.current
    assert first is not None
    prefix = first.hash[:depth]
    # Link records in slot order: their names start with the slot in upper-case hex, so this is
    # also the name order boxo encodes them in.
    records: list[bytes] = []
    tsizes = 0
    occupied = 0
    while (entry := cursor.current) is not None and entry.hash[:depth] == prefix:
        slot = entry.hash[depth]
        occupied |= 1 << slot
        label = _LABELS[slot]
        following = cursor.following
        if following is None or following.hash[: depth + 1] != entry.hash[: depth + 1]:
            records.append(link_record(entry.cid, entry.name, entry.tsize, label))
            tsizes += entry.tsize
            cursor.advance()
            continue
        if depth + 1 >= MAX_DEPTH:
            names = f"{entry.name!r}, {following.name!r}"
            raise ValueError(f"sharded directory too deep: names {names} have the same hash")
        child_cid, child_size = _shard(cursor, depth + 1, sink, cid_version)
        records.append(link_record(child_cid, label, child_size))
        tsizes += child_size
    block = encode_records(records, hamt_shard_data(bitfield_bytes(occupied)))
    cid = node_cid(block, cid_version)
    if sink is not None:
        sink(cid, block)
    return cid, len(block) + tsizes
