"""A deliberately simple pure-Python commP, used only by tests to cross-check the C core.

It shares no code or technique with the C one: Fr32 works on each 127-byte chunk as one big
integer, and the tree is built level by level over explicit zero leaves (no zero-root table).
"""

from __future__ import annotations

import hashlib

CHUNK = 127
NODE = 32
_MASK_254 = (1 << 254) - 1


def fr32_expand(data: bytes) -> bytes:
    """Fr32 of data padded with zeros to whole 127-byte chunks: 254 data bits per 32 bytes."""
    data = data + bytes(-len(data) % CHUNK)
    out = bytearray()
    for offset in range(0, len(data), CHUNK):
        bits = int.from_bytes(data[offset : offset + CHUNK], "little")
        for k in range(4):
            out += ((bits >> (254 * k)) & _MASK_254).to_bytes(NODE, "little")
    return bytes(out)


def node_hash(left: bytes, right: bytes) -> bytes:
    """sha2-256-trunc254: sha256 of the pair with the two top bits of the last byte cleared."""
    digest = bytearray(hashlib.sha256(left + right).digest())
    digest[31] &= 0x3F
    return bytes(digest)


def natural_piece_size(payload_size: int) -> int:
    """Smallest power of two >= the Fr32-expanded size."""
    expanded = -(-payload_size // CHUNK) * 128
    return 1 << (expanded - 1).bit_length()


def commp(data: bytes) -> tuple[bytes, int]:
    """(commitment, natural piece size) of data, by building the whole tree in memory."""
    piece_size = natural_piece_size(len(data))
    leaves = fr32_expand(data)
    level = [leaves[i : i + NODE] for i in range(0, len(leaves), NODE)]
    level += [bytes(NODE)] * (piece_size // NODE - len(level))
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0], piece_size


def pad(commitment: bytes, from_size: int, to_size: int) -> bytes:
    """Commitment of the from_size piece followed by zeros up to to_size (PadCommP)."""
    zero = bytes(NODE)
    size = NODE
    while size < from_size:
        zero = node_hash(zero, zero)
        size *= 2
    while size < to_size:
        commitment = node_hash(commitment, zero)
        zero = node_hash(zero, zero)
        size *= 2
    return commitment
