"""dag-pb PBNode bytes exactly as boxo / go-codec-dagpb write them (docs/formats.md#file-dag, docs/formats.md#dag-pb-node-layout).

Hand-written rather than generated with a protobuf library: the layout is tiny and fixed, and
byte-exactness depends on details a generic protobuf encoder does not give: links come before
Data (not field-number order), and every link always carries Name and Tsize, even an empty name
or a zero size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dataset_worker.content._multiformats import pb_link
from dataset_worker.content.cid import dag_pb_cid
from dataset_worker.content.varint import decode_uvarint, encode_uvarint

# Protobuf keys: (field number << 3) | wire type. Wire type 2 = length-delimited, 0 = varint.
_NODE_DATA = 0x0A  # PBNode.Data, field 1
_NODE_LINK = 0x12  # PBNode.Links, field 2
_LINK_HASH = 0x0A  # PBLink.Hash, field 1
_LINK_NAME = 0x12  # PBLink.Name, field 2
_LINK_TSIZE = 0x18  # PBLink.Tsize, field 3


@dataclass(frozen=True, slots=True)
class PBLink:
    """One dag-pb link: child CID (binary), name as raw bytes, and Tsize."""

    cid: bytes
    name: bytes
    tsize: int


@dataclass(frozen=True, slots=True)
class PBNode:
    """A decoded dag-pb node. `data` is None when the node has no Data field."""

    links: tuple[PBLink, ...]
    data: bytes | None


def encode_link(link: PBLink) -> bytes:
    """One `12 len body` link record, body = Hash, Name (always), Tsize (always)."""
    return link_record(link.cid, link.name, link.tsize)


def link_record(cid: bytes, name: bytes, tsize: int, prefix: bytes = b"") -> bytes:
    """`encode_link` without a PBLink, named `prefix + name`: the hot path of wide directories
    (a HAMT link's name is its slot label, then the entry's name)."""
    if tsize < 0:
        raise ValueError(f"link Tsize must not be negative, got {tsize}")
    return pb_link(cid, prefix, name, tsize)


def encode_records(records: Iterable[bytes], data: bytes | None) -> bytes:
    """A PBNode from link records already in order (`link_record`), then Data."""
    parts = list(records)
    if data is not None:
        parts.append(bytes((_NODE_DATA,)) + encode_uvarint(len(data)) + data)
    return b"".join(parts)


def encode_node(links: Iterable[PBLink], data: bytes | None, *, sort_links: bool = True) -> bytes:
    """Encode a PBNode: all links, then Data.

    `sort_links` sorts by name bytes with a stable sort, as boxo does at encode time. File nodes
    have only empty names, so sorting leaves them in order either way.
    """
    ordered: Sequence[PBLink] = sorted(links, key=_name_key) if sort_links else tuple(links)
    return encode_records((encode_link(link) for link in ordered), data)


def _name_key(link: PBLink) -> bytes:
    return link.name


def node_cid(block: bytes, cid_version: int = 1) -> bytes:
    """CID of an encoded node: CIDv1 dag-pb sha2-256, or CIDv0 (a bare sha2-256 multihash).

    Singularity only makes CIDv1; CIDv0 is here for the published boxo/kubo test vectors.
    """
    if cid_version == 1:
        return dag_pb_cid(block)
    if cid_version == 0:
        return b"\x12\x20" + hashlib.sha256(block).digest()
    raise ValueError(f"CID version must be 0 or 1, got {cid_version}")


def node_size(block: bytes, links: Iterable[PBLink]) -> int:
    """boxo `ProtoNode.Size()`: encoded length plus the Tsize of the node's own links."""
    return len(block) + sum(link.tsize for link in links)


def decode_node(block: bytes | memoryview) -> PBNode:
    """Decode a dag-pb block. Raises ValueError on anything that is not a well-formed PBNode."""
    buf = bytes(block)
    links: list[PBLink] = []
    data: bytes | None = None
    pos = 0
    while pos < len(buf):
        key = buf[pos]
        pos += 1
        if key == _NODE_LINK:
            body, pos = _read_bytes(buf, pos, "PBNode.Links")
            links.append(_decode_link(body))
        elif key == _NODE_DATA:
            if data is not None:
                raise ValueError("dag-pb: duplicate Data field")
            data, pos = _read_bytes(buf, pos, "PBNode.Data")
        else:
            raise ValueError(f"dag-pb: unexpected field key 0x{key:02x} at offset {pos - 1}")
    return PBNode(tuple(links), data)


def _decode_link(body: bytes) -> PBLink:
    cid: bytes | None = None
    name = b""
    tsize = 0
    pos = 0
    while pos < len(body):
        key = body[pos]
        pos += 1
        if key == _LINK_HASH:
            cid, pos = _read_bytes(body, pos, "PBLink.Hash")
        elif key == _LINK_NAME:
            name, pos = _read_bytes(body, pos, "PBLink.Name")
        elif key == _LINK_TSIZE:
            tsize, pos = decode_uvarint(body, pos)
        else:
            raise ValueError(f"dag-pb: unexpected PBLink field key 0x{key:02x}")
    if cid is None:
        raise ValueError("dag-pb: link without Hash")
    return PBLink(cid, name, tsize)


def _read_bytes(buf: bytes, pos: int, what: str) -> tuple[bytes, int]:
    length, pos = decode_uvarint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ValueError(f"dag-pb: {what} runs past the end of the block")
    return buf[pos:end], end
