"""A node's bytes in `car_blocks`: raw, or compressed when that saves an eighth (db/nodebytes.py)."""

from __future__ import annotations

import os

import pytest

from dataset_worker.db.nodebytes import CorruptNode, node_bytes, stored_node
from tests.support.nodes import names_node


def test_a_node_of_names_is_stored_compressed_and_read_back_whole() -> None:
    node = names_node(1000)
    raw, zipped = stored_node(node)
    assert raw is None and zipped is not None
    assert len(zipped) < len(node) * 7 / 8
    assert node_bytes(raw, zipped) == node


def test_a_node_that_does_not_shrink_by_an_eighth_stays_raw() -> None:
    node = os.urandom(4096)  # CIDs and sizes: what a split file's node holds
    assert stored_node(node) == (node, None)
    assert node_bytes(node, None) == node


def test_a_leaf_row_has_no_node_bytes() -> None:
    assert node_bytes(None, None) is None


def test_damaged_compressed_bytes_are_an_error_not_other_bytes() -> None:
    _, zipped = stored_node(names_node(1000))
    assert zipped is not None
    damaged = bytearray(zipped)
    damaged[len(damaged) // 2] ^= 0xFF
    with pytest.raises(CorruptNode, match="do not decompress"):
        node_bytes(None, bytes(damaged))
