"""UnixFS HAMT-sharded directories exactly as boxo v0.35.0 builds them (docs/formats.md#hamt-shards).

The trie is canonical (it depends only on the final set of entries), so it is built from
scratch: group entries by the hash byte of each depth, make a child shard wherever two or more
entries share a prefix, and serialise bottom-up because a parent link needs the child's CID and
cumulative size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import mmh3

from dataset_worker.content.dagpb import PBLink, encode_node, node_cid
from dataset_worker.content.unixfs import HAMT_FANOUT, hamt_shard_data

MAX_DEPTH = 8  # one level per byte of the 64-bit hash, for fanout 256


@dataclass(frozen=True, slots=True)
class HamtDirectory:
    """A sharded directory: root shard CID, boxo `Size()` of the root, all shard blocks.

    `blocks` are (cid, block) pairs, children before their parents, the root shard last.
    """

    cid: bytes
    size: int
    blocks: list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class _Entry:
    name: bytes
    hash: bytes
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
    """Build the HAMT for entries name (raw bytes) → (CID, Tsize).

    `cid_version` 0 reproduces boxo's bare `hamt.NewShard` test vectors; Singularity uses 1.
    """
    items = [_Entry(name, hamt_hash(name), cid, tsize) for name, (cid, tsize) in entries.items()]
    blocks: list[tuple[bytes, bytes]] = []
    cid, size = _build_shard(items, 0, blocks, cid_version)
    return HamtDirectory(cid, size, blocks)


def _build_shard(
    items: list[_Entry], depth: int, blocks: list[tuple[bytes, bytes]], cid_version: int
) -> tuple[bytes, int]:
    buckets: dict[int, list[_Entry]] = {}
    for item in items:
        buckets.setdefault(item.hash[depth], []).append(item)
    links: list[PBLink] = []
    occupied = 0
    for slot in sorted(buckets):
        bucket = buckets[slot]
        prefix = b"%02X" % slot
        occupied |= 1 << slot
        if len(bucket) == 1:
            entry = bucket[0]
            links.append(PBLink(entry.cid, prefix + entry.name, entry.tsize))
            continue
        if depth + 1 >= MAX_DEPTH:
            names = ", ".join(repr(entry.name) for entry in bucket)
            raise ValueError(f"sharded directory too deep: names {names} have the same hash")
        child_cid, child_size = _build_shard(bucket, depth + 1, blocks, cid_version)
        links.append(PBLink(child_cid, prefix, child_size))
    block = encode_node(links, hamt_shard_data(bitfield_bytes(occupied)))
    cid = node_cid(block, cid_version)
    blocks.append((cid, block))
    return cid, len(block) + sum(link.tsize for link in links)
