"""The `directories.data` blob: a directory's entries plus the split-file blocks it carries.

Singularity stores zstd-compressed CBOR of its boxo in-memory node (docs/formats.md#directory-data-blob) and says any store
works as long as the node bytes come out the same. Ours keeps the entries themselves, which is all
a UnixFS directory node depends on (basic or HAMT, `content.directory` rebuilds either
canonically), plus, per file entry, the intermediate nodes of a file split into several ranges
(they go into the DAG piece, not the data CARs). A replaced entry drops its old blocks with it.

Layout: one version byte, then zlib of: uvarint count, and per entry (sorted by name bytes)
name, CID, Tsize, extra-block count, and each extra block's CID and bytes; strings and byte
strings are uvarint-length-prefixed. An empty or NULL blob is an empty directory. The one-byte
blob `WIDE` says the entries are rows of `directory_entries` instead (`widedir`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from dataset_worker.content._multiformats import uvarint
from dataset_worker.content.directory import DirectoryNode, directory_from_links, name_bytes
from dataset_worker.content.varint import decode_uvarint, encode_uvarint

FORMAT_VERSION = 1
WIDE = bytes((2,))  # the entries are rows of directory_entries (worker/jobs/widedir.py)
_ZLIB_LEVEL = 1  # names compress well even at the fastest level; CIDs do not compress at all

Block = tuple[bytes, bytes]
_NO_EXTRAS = (encode_uvarint(0),)


class DirEntry(NamedTuple):
    """One link of a directory: child CID, Tsize, and (split files only) its extra blocks."""

    cid: bytes
    tsize: int
    extras: tuple[Block, ...] = ()


Entries = dict[str, DirEntry]


SortedEntry = tuple[bytes, bytes, int, tuple[Block, ...]]
"""One entry as (name bytes, CID, Tsize, extra blocks), in a list sorted by name bytes."""


def sorted_entries(entries: Mapping[str, DirEntry]) -> list[SortedEntry]:
    """The entries sorted by name bytes, the order of both the blob and the node's links."""
    # Names are unique, so sorting the tuples sorts by name bytes alone.
    return sorted([(name_bytes(name), *entry) for name, entry in entries.items()])


def encode_entries(entries: Mapping[str, DirEntry]) -> bytes:
    """The blob for `entries`."""
    return encode_sorted(sorted_entries(entries))


def encode_sorted(items: list[SortedEntry]) -> bytes:
    """The blob for entries already sorted (`sorted_entries`)."""
    # Every pack job rewrites the blobs of the folders it adds to: this loop runs once per file
    # of the folder, so it calls the native varint encoder directly.
    parts = [uvarint(len(items))]
    extend = parts.extend
    for raw_name, cid, tsize, extras in items:
        extend((uvarint(len(raw_name)), raw_name, uvarint(len(cid)), cid, uvarint(tsize)))
        extend(_extras_parts(extras))
    return bytes((FORMAT_VERSION,)) + zlib.compress(b"".join(parts), _ZLIB_LEVEL)


def decode_entries(blob: bytes | None) -> Entries:
    """Entries of a stored blob; ValueError if it is not in this format."""
    if not blob:
        return {}
    if blob == WIDE:
        raise ValueError("directory data is WIDE: its entries are rows of directory_entries")
    if blob[0] != FORMAT_VERSION:
        raise ValueError(f"directory data has format version {blob[0]}, expected {FORMAT_VERSION}")
    try:
        body = zlib.decompress(blob[1:])
    except zlib.error as exc:
        raise ValueError(f"directory data is corrupt: {exc}") from None
    count, pos = decode_uvarint(body)
    entries: Entries = {}
    for _ in range(count):
        raw_name, pos = _read(body, pos)
        cid, pos = _read(body, pos)
        tsize, pos = decode_uvarint(body, pos)
        extras, pos = _read_extras(body, pos)
        entries[raw_name.decode("utf-8", "surrogateescape")] = DirEntry(cid, tsize, extras)
    if pos != len(body):
        raise ValueError("directory data has trailing bytes")
    return entries


def is_wide(blob: bytes | None) -> bool:
    """Whether a directory's entries are rows of directory_entries rather than its blob."""
    return blob == WIDE


def encode_extras(extras: tuple[Block, ...]) -> bytes | None:
    """A split file's extra blocks as a wide directory's row keeps them (None: there are none)."""
    return b"".join(_extras_parts(extras)) if extras else None


def decode_extras(blob: bytes | None) -> tuple[Block, ...]:
    """The extra blocks of `encode_extras`; ValueError if the bytes are not in that format."""
    if not blob:
        return ()
    extras, pos = _read_extras(blob, 0)
    if pos != len(blob):
        raise ValueError("directory entry extras have trailing bytes")
    return extras


def _extras_parts(extras: tuple[Block, ...]) -> Sequence[bytes]:
    if not extras:  # every entry but a split file's: no list to build
        return _NO_EXTRAS
    parts = [encode_uvarint(len(extras))]
    for cid, block in extras:
        parts += (encode_uvarint(len(cid)), cid, encode_uvarint(len(block)), block)
    return parts


def _read_extras(body: bytes, pos: int) -> tuple[tuple[Block, ...], int]:
    count, pos = decode_uvarint(body, pos)
    extras = []
    for _ in range(count):
        cid, pos = _read(body, pos)
        block, pos = _read(body, pos)
        extras.append((cid, block))
    return tuple(extras), pos


def _read(body: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = decode_uvarint(body, pos)
    end = pos + length
    if end > len(body):
        raise ValueError("directory data is truncated")
    return body[pos:end], end


def build_node(entries: Mapping[str, DirEntry]) -> DirectoryNode:
    """The directory's UnixFS node(s) as boxo v0.35.0 builds them (basic or HAMT)."""
    return directory_from_links(sorted_entries(entries))


def extra_blocks(entries: Mapping[str, DirEntry]) -> list[Block]:
    """The split-file blocks of all entries, one per CID, sorted by CID bytes (docs/formats.md#dag-piece)."""
    unique: dict[bytes, bytes] = {}
    for entry in entries.values():
        for cid, block in entry.extras:
            unique[cid] = block
    return sorted(unique.items())
