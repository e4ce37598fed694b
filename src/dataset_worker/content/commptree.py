"""commP of a payload hashed in independent segments (by several threads), then joined.

A segment of 127·2^k payload bytes Fr32-expands to exactly 2^(k+2) leaves, so its commitment is
the root of one aligned subtree of the whole piece's tree. Hashing the segments separately and
joining their roots (sha2-256-trunc254 of each pair, all-zero subtrees past the last one) gives
the same commitment as one CommP over the whole payload.
"""

from __future__ import annotations

import hashlib

from dataset_worker.content import _commp
from dataset_worker.content.commp import MIN_PAYLOAD, CommP, CommPError, pad_commp

SEGMENT = 127 << 18  # payload bytes of one 32 MiB subtree

_FR32_BLOCK = 127
_NODE_SIZE = 32


def check_segment(segment: int) -> None:
    """CommPError unless `segment` is 127 times a power of two (an aligned subtree's payload)."""
    blocks = segment // _FR32_BLOCK
    if segment <= 0 or segment % _FR32_BLOCK or blocks & (blocks - 1):
        raise CommPError(f"segment must be 127 times a power of two bytes, got {segment}")


def segment_count(payload_size: int, segment: int = SEGMENT) -> int:
    """How many segments a payload of `payload_size` bytes is cut into (the last may be short)."""
    check_segment(segment)
    return max(1, -(-payload_size // segment))


def segment_result(calc: CommP) -> tuple[bytes, int]:
    """(commitment, natural piece size) of one segment's bytes, even a last one that is shorter
    than the commP minimum."""
    if calc.payload_size < MIN_PAYLOAD:
        # Zeros up to a whole Fr32 block change nothing: the tail block is zero-padded anyway.
        calc.update(bytes(_FR32_BLOCK - calc.payload_size % _FR32_BLOCK))
    result = calc.digest()
    return result.commitment, result.piece_size


def join_segments(results: list[tuple[bytes, int]], segment: int = SEGMENT) -> bytes:
    """The whole payload's commitment from its segments' (commitment, piece size), in order."""
    check_segment(segment)
    if len(results) == 1:
        return results[0][0]
    full = segment // _FR32_BLOCK * 128
    level = (full // _NODE_SIZE).bit_length() - 1
    nodes = [pad_commp(commitment, size, full) for commitment, size in results]
    while len(nodes) > 1:
        if len(nodes) % 2:
            nodes.append(_commp.zero_root(level))
        nodes = [_node(nodes[i], nodes[i + 1]) for i in range(0, len(nodes), 2)]
        level += 1
    return nodes[0]


def _node(left: bytes, right: bytes) -> bytes:
    digest = bytearray(hashlib.sha256(left + right).digest())
    digest[31] &= 0x3F  # trunc254: the root must fit in the BLS12-381 field
    return bytes(digest)
