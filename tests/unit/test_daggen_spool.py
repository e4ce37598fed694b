"""The daggen spool gives back every block row and exported directory, in order, in batches."""

from __future__ import annotations

import os
import zlib

import pytest

from dataset_worker.worker.jobs.daggen import spool as spool_module
from dataset_worker.worker.jobs.daggen.spool import DagSpool
from tests.support.nodes import names_node


def test_rows_come_back_in_order_in_batches_bounded_by_count_and_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spool_module, "BATCH", 3)
    monkeypatch.setattr(spool_module, "BATCH_BYTES", 100)
    # Random bytes do not compress: these nodes are kept raw (see the next test for the others).
    blocks = [
        (bytes([i]) * 36, i * 1000, 40 + size, b"\x80\x01", os.urandom(size))
        for i, size in enumerate([0, 10, 10, 10, 150, 5, 5])
    ]
    with DagSpool() as spool:
        for row in blocks:
            spool.add_block(*row)
        for i in range(7):
            spool.add_directory(i + 1, bytes([i]) * 36)
        for _ in range(2):  # read back as often as the recording transaction is retried
            batches = list(spool.block_batches())
            # 3 rows, then a batch that ends at the 150-byte block, then the rest.
            assert [len(b) for b in batches] == [3, 2, 2]
            assert [row for b in batches for row in b] == [(*row, None) for row in blocks]
            directories = list(spool.directory_batches())
            assert [len(b) for b in directories] == [3, 3, 1]
            assert [d for b in directories for d in b] == [
                (i + 1, bytes([i]) * 36) for i in range(7)
            ]
        assert (spool.block_count, spool.directory_count) == (7, 7)


def test_without_kept_blocks_only_the_count_is_kept() -> None:
    with DagSpool(keep_blocks=False) as spool:
        spool.add_block(b"c" * 36, 59, 40, b"\x28", b"data")
        assert spool.block_count == 1
        assert list(spool.block_batches()) == []


def test_a_node_that_compresses_is_kept_compressed() -> None:
    names = names_node(200)
    with DagSpool() as spool:
        spool.add_block(b"c" * 36, 59, 40 + len(names), b"\x28", names)
        ((row,),) = spool.block_batches()
    cid, car_offset, length, varint, raw, zipped = row
    assert (cid, car_offset, length, varint, raw) == (b"c" * 36, 59, 40 + len(names), b"\x28", None)
    assert zipped is not None and len(zipped) < len(names) // 2
    assert zlib.decompress(zipped) == names
