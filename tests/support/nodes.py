"""Node bytes for the tests of how `car_blocks` keeps them (db/nodebytes.py)."""

from __future__ import annotations


def names_node(entries: int) -> bytes:
    """Bytes shaped like a folder's node: `entries` length-prefixed file names, which zlib
    shrinks well past the eighth `stored_node` asks for (CIDs, which do not compress, left out)."""
    return b"".join(b"\x12\x0cf%07d.bin" % i for i in range(entries))
