"""Unsigned LEB128 varints, as multiformats, protobuf and CARv1 use them."""

from __future__ import annotations

from dataset_worker.content._multiformats import uvarint

_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))
_NATIVE_LIMIT = 1 << 64  # the C encoder's range; larger numbers take the loop below


def encode_uvarint(n: int) -> bytes:
    """Encode a non-negative integer as an unsigned varint."""
    if 0 <= n < 0x80:  # the common case in every hot path: one byte, made once
        return _ONE_BYTE[n]
    if n < 0:
        raise ValueError(f"varint must not be negative, got {n}")
    if n < _NATIVE_LIMIT:
        return uvarint(n)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_uvarint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a varint at `offset`; return (value, offset just after it)."""
    value, shift = 0, 0
    while True:
        if offset >= len(data):
            raise ValueError("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 9 bytes")
