"""How `car_blocks` keeps a node's bytes: as they are, or zlib-compressed when that is much smaller
(docs/architecture.md#the-car_blocks-table).

A DAG piece keeps every directory node in the database, so that the gateway can serve the tree
and an inline DAG piece can be rebuilt after the CAR is gone. A directory node is mostly its
entries' names and CIDs: the names compress well and the CIDs not at all, so zlib at its fastest
level takes a tiny-file dataset's nodes from 57 to 40 bytes a file. A node that would not
shrink by an eighth (a file's intermediate node is all CIDs and sizes) stays raw, where reading
it back costs nothing. Exactly one of the two columns is set for a node; leaves have neither.
"""

from __future__ import annotations

import zlib

ZLIB_LEVEL = 1  # as directories.data: the names compress well even at the fastest level
_WORTH_IT = 7 / 8  # compressed size below this share of the raw size, or keep it raw


def stored_node(block: bytes) -> tuple[bytes | None, bytes | None]:
    """(raw_block, raw_block_zlib) for a node's bytes: one of the two is set."""
    packed = zlib.compress(block, ZLIB_LEVEL)
    if len(packed) < len(block) * _WORTH_IT:
        return None, packed
    return block, None


class CorruptNode(ValueError):
    """A row's compressed node bytes do not decompress."""


def node_bytes(raw_block: bytes | None, raw_block_zlib: bytes | None) -> bytes | None:
    """A node's bytes from its row's two columns (None for a leaf, which keeps neither);
    CorruptNode if the compressed form is damaged. Callers still check the bytes against the
    CID, as they do raw ones."""
    if raw_block_zlib is None:
        return raw_block
    try:
        return zlib.decompress(raw_block_zlib)
    except zlib.error as exc:
        raise CorruptNode(f"the stored node bytes do not decompress ({exc})") from None
