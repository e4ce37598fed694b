"""CIDv1 in binary and base32 form, for the three kinds of CID this project makes.

Written by hand rather than with a multiformats library: every CID here has one of three fixed
prefixes, so building one is a byte concatenation, and the pack hot path makes one per MiB of
data. The string form is RFC 4648 base32 (lower case, no padding) behind the multibase "b".
"""

from __future__ import annotations

import base64
import hashlib

from dataset_worker.content.base32 import b32_lower
from dataset_worker.content.varint import decode_uvarint, encode_uvarint

RAW = 0x55
DAG_PB = 0x70
FIL_COMMITMENT_UNSEALED = 0xF101
SHA2_256 = 0x12
SHA2_256_TRUNC254_PADDED = 0x1012

RAW_PREFIX = bytes((0x01, RAW, SHA2_256, 0x20))
DAG_PB_PREFIX = bytes((0x01, DAG_PB, SHA2_256, 0x20))
PIECE_PREFIX = (
    b"\x01"
    + encode_uvarint(FIL_COMMITMENT_UNSEALED)
    + encode_uvarint(SHA2_256_TRUNC254_PADDED)
    + b"\x20"
)


def raw_cid(data: bytes | bytearray | memoryview) -> bytes:
    """Binary CIDv1 (raw codec, sha2-256) of a block: 36 bytes."""
    return RAW_PREFIX + hashlib.sha256(data).digest()


def raw_digest(cid: bytes | None) -> bytes | None:
    """The sha2-256 digest of a raw CIDv1 (the sha256 of the block's bytes), else None."""
    if cid is not None and len(cid) == len(RAW_PREFIX) + 32 and cid.startswith(RAW_PREFIX):
        return cid[len(RAW_PREFIX) :]
    return None


def dag_pb_cid(block: bytes | bytearray | memoryview) -> bytes:
    """Binary CIDv1 (dag-pb codec, sha2-256) of an encoded dag-pb node: 36 bytes."""
    return DAG_PB_PREFIX + hashlib.sha256(block).digest()


def piece_cid(commitment: bytes) -> bytes:
    """Binary piece CID (fil-commitment-unsealed, sha2-256-trunc254-padded) of a 32-byte commP."""
    if len(commitment) != 32:
        raise ValueError(f"a piece commitment is 32 bytes, got {len(commitment)}")
    return PIECE_PREFIX + commitment


EMPTY_FILE_CID = raw_cid(b"")


def cid_to_str(cid: bytes) -> str:
    """Multibase base32 string of a binary CIDv1 ("bafk…", "bafy…", "baga…")."""
    return "b" + b32_lower(cid)


def cid_from_str(text: str) -> bytes:
    """Binary form of a base32 CIDv1 string; raises ValueError naming the problem."""
    if not text.startswith("b") or len(text) < 2:
        raise ValueError(f'not a base32 CIDv1: "{text}" (it must start with "b")')
    body = text[1:].upper()
    try:
        cid = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError as exc:
        raise ValueError(f'not a base32 CIDv1: "{text}": {exc}') from None
    validate_cid(cid)
    return cid


def validate_cid(cid: bytes) -> None:
    """Check that bytes form a CIDv1 with a complete multihash."""
    try:
        version, pos = decode_uvarint(cid)
        _codec, pos = decode_uvarint(cid, pos)
        _hash_code, pos = decode_uvarint(cid, pos)
        length, pos = decode_uvarint(cid, pos)
    except ValueError as exc:
        raise ValueError(f"not a CID: {exc}") from None
    if version != 1:
        raise ValueError(f"only CIDv1 is supported, got version {version}")
    if len(cid) - pos != length:
        raise ValueError(f"multihash says {length} digest bytes, found {len(cid) - pos}")
