"""UnixFS Data messages and Singularity's file DAG assembly (docs/formats.md#file-dag, docs/formats.md#dag-pb-node-layout).

The UnixFS protobuf bytes are written by hand: each message here has a fixed field order
(field-number order, blocksizes unpacked, no optional fields besides the ones shown), and a
generic protobuf library would add nothing but a dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from dataset_worker.content.cid import dag_pb_cid
from dataset_worker.content.dagpb import PBLink, encode_node
from dataset_worker.content.varint import decode_uvarint, encode_uvarint

LINKS_PER_NODE = 1024  # Singularity's NumLinkPerNode
HAMT_HASH_MURMUR3 = 0x22
HAMT_FANOUT = 256


class DataType(IntEnum):
    """UnixFS Data.Type values."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


DIRECTORY_DATA = b"\x08\x01"  # Type = Directory, nothing else (no mode, no mtime)


def file_data(blocksizes: Sequence[int]) -> bytes:
    """UnixFS File message: Type, filesize (always present), then one unpacked blocksize each."""
    parts = [b"\x08\x02\x18", encode_uvarint(sum(blocksizes))]
    for size in blocksizes:
        parts.append(b"\x20")
        parts.append(encode_uvarint(size))
    return b"".join(parts)


def hamt_shard_data(bitfield: bytes) -> bytes:
    """UnixFS HAMTShard message: Type, Data = bitfield, hashType murmur3, fanout 256.

    An empty bitfield (a shard with no entries) leaves Data out, as Go does for a nil slice.
    """
    data = b"\x12" + encode_uvarint(len(bitfield)) + bitfield if bitfield else b""
    return b"".join(
        (
            b"\x08\x05",
            data,
            b"\x28",
            encode_uvarint(HAMT_HASH_MURMUR3),
            b"\x30",
            encode_uvarint(HAMT_FANOUT),
        )
    )


@dataclass(frozen=True, slots=True)
class UnixFSData:
    """The fields of a decoded UnixFS Data message that this project uses."""

    type: DataType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()
    hash_type: int | None = None
    fanout: int | None = None


def decode_data(message: bytes) -> UnixFSData:
    """Decode a UnixFS Data message; raises ValueError if it is malformed."""
    values: dict[int, int | bytes] = {}
    blocksizes: list[int] = []
    pos = 0
    while pos < len(message):
        key, pos = decode_uvarint(message, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = decode_uvarint(message, pos)
            if number == 4:
                blocksizes.append(value)
            else:
                values[number] = value
        elif wire == 2:
            length, pos = decode_uvarint(message, pos)
            if pos + length > len(message):
                raise ValueError(f"unixfs: field {number} runs past the end of the message")
            chunk = message[pos : pos + length]
            pos += length
            if number == 4:  # packed blocksizes, accepted on read
                inner = 0
                while inner < len(chunk):
                    value, inner = decode_uvarint(chunk, inner)
                    blocksizes.append(value)
            else:
                values[number] = chunk
        else:
            raise ValueError(f"unixfs: unsupported wire type {wire} for field {number}")
    kind = _int_field(values, 1)
    if kind is None:
        raise ValueError("unixfs: missing Type")
    try:
        data_type = DataType(kind)
    except ValueError:
        raise ValueError(f"unixfs: unknown Type {kind}") from None
    return UnixFSData(
        type=data_type,
        data=_bytes_field(values, 2),
        filesize=_int_field(values, 3),
        blocksizes=tuple(blocksizes),
        hash_type=_int_field(values, 5),
        fanout=_int_field(values, 6),
    )


def _int_field(values: dict[int, int | bytes], number: int) -> int | None:
    value = values.get(number)
    if isinstance(value, bytes):
        raise ValueError(f"unixfs: field {number} must be a varint")
    return value


def _bytes_field(values: dict[int, int | bytes], number: int) -> bytes | None:
    value = values.get(number)
    if isinstance(value, int):
        raise ValueError(f"unixfs: field {number} must be length-delimited")
    return value


@dataclass(frozen=True, slots=True)
class FileDag:
    """A file (or range) DAG built from its children's links.

    `nodes` holds the created (cid, block) pairs in creation order: level 1 left to right, then
    level 2, …, the root last. It is empty when there was a single link (the link is the root).
    """

    root_cid: bytes
    size: int
    nodes: list[tuple[bytes, bytes]] = field(default_factory=list)


def file_node(links: Sequence[tuple[bytes, int]]) -> bytes:
    """One dag-pb File node over (cid, data size) links: empty names, Tsize = data size."""
    pb_links = [PBLink(cid, b"", size) for cid, size in links]
    return encode_node(pb_links, file_data([size for _, size in links]), sort_links=False)


def assemble_file_from_links(links: Sequence[tuple[bytes, int]]) -> FileDag:
    """Singularity's `AssembleFileFromLinks`: pack links level by level, 1024 per node.

    `links` are (binary CID, data byte count) of the children in file order. A single link is
    returned as is, with no node. There is no balancing: 2000 links make 2 nodes and a root.
    """
    if not links:
        raise ValueError("cannot assemble a file from zero links")
    for cid, size in links:
        if size < 0:
            raise ValueError(
                f"link size must not be negative, got {size} for a {len(cid)}-byte CID"
            )
    nodes: list[tuple[bytes, bytes]] = []
    level = list(links)
    while len(level) > 1:
        next_level: list[tuple[bytes, int]] = []
        for start in range(0, len(level), LINKS_PER_NODE):
            group = level[start : start + LINKS_PER_NODE]
            block = file_node(group)
            cid = dag_pb_cid(block)
            nodes.append((cid, block))
            next_level.append((cid, sum(size for _, size in group)))
        level = next_level
    root_cid, size = level[0]
    return FileDag(root_cid, size, nodes)
