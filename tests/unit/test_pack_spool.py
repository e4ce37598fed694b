"""A pack job's spool: block and range records go to a temporary file and come back unchanged."""

from __future__ import annotations

import pytest

from dataset_worker.content.chunker import BlockKind
from dataset_worker.content.cid import EMPTY_FILE_CID, dag_pb_cid, raw_cid
from dataset_worker.content.packer import BlockRecord, LeafBatch, PackedRange
from dataset_worker.worker.jobs.pack.spool import JobRange, PackSpool, SpooledRange

WHOLE = JobRange(11, 0, 5, 101, "d/a.bin", 5, 1, 7)
PART = JobRange(12, 1 << 20, 3, 102, "big\udcff.bin", (1 << 20) + 3, 2, None)  # not UTF-8
UNKNOWN = JobRange(13, 0, -1, 103, "pipe", -1, 3, 7)


def _leaf(key: JobRange, offset: int) -> BlockRecord:
    cid = raw_cid(b"x" * offset)
    return BlockRecord(cid, 59 + offset, 41, b"\x29", BlockKind.LEAF, key, offset, None)


def _records() -> tuple[list[BlockRecord], list[PackedRange]]:
    node = dag_pb_cid(b"\x12node")
    blocks = [
        _leaf(WHOLE, 0),
        _leaf(PART, 1 << 20),
        BlockRecord(node, 300, 80, b"\xa4\x80\x40", BlockKind.NODE, PART, None, b"\x12node"),
    ]
    ranges = [
        PackedRange(WHOLE, raw_cid(b"hello"), 5),
        PackedRange(PART, None, 3),  # skipped
        PackedRange(UNKNOWN, EMPTY_FILE_CID, 0),
    ]
    return blocks, ranges


def test_records_come_back_in_order_and_can_be_read_again() -> None:
    blocks, ranges = _records()
    with PackSpool() as spool:
        for block in blocks:
            spool.add_block(block)
        for packed in ranges:
            spool.add_range(packed)
        expected_blocks = [
            (blocks[0].cid, 59, 41, b"\x29", None, 0, 101),
            (blocks[1].cid, 59 + (1 << 20), 41, b"\x29", None, 1 << 20, 102),
            (blocks[2].cid, 300, 80, b"\xa4\x80\x40", b"\x12node", None, None),
        ]
        expected_ranges = [
            SpooledRange(11, 101, raw_cid(b"hello"), 5, 7, "d/a.bin", True, False),
            SpooledRange(12, 102, None, 3, None, "big\udcff.bin", False, False),
            SpooledRange(13, 103, EMPTY_FILE_CID, 0, 7, "pipe", True, True),
        ]
        for _ in range(2):  # a retried transaction reads everything again
            assert list(spool.blocks()) == expected_blocks
            assert list(spool.ranges()) == expected_ranges
        assert (spool.block_count, spool.range_count) == (3, 3)


def test_without_blocks_only_ranges_are_kept() -> None:
    blocks, ranges = _records()
    with PackSpool(keep_blocks=False) as spool:
        for block in blocks:
            spool.add_block(block)
        spool.add_range(ranges[0])
        assert list(spool.blocks()) == []
        assert [r.range_id for r in spool.ranges()] == [11]


def test_a_truncated_spool_is_a_clear_error() -> None:
    _, ranges = _records()
    with PackSpool() as spool:
        spool.add_range(ranges[0])
        spool.range_count += 1  # claims a record that was never written
        with pytest.raises(RuntimeError, match="pack spool is truncated"):
            list(spool.ranges())


def test_a_range_of_one_leaf_keeps_its_offset_instead_of_a_block_row() -> None:
    one = JobRange(21, 0, 5, 201, "one.bin", 5, 1, 7)
    split = JobRange(22, 0, 3, 202, "split.bin", 3, 1, 7)
    node = dag_pb_cid(b"\x12node")
    with PackSpool() as spool:
        spool.add_block(
            BlockRecord(raw_cid(b"hello"), 59, 39, b"\x25", BlockKind.LEAF, one, 0, None)
        )
        spool.add_range(PackedRange(one, raw_cid(b"hello"), 5))
        # Two leaves and their node: every block keeps its row, the range no offset.
        spool.add_block(_leaf(split, 0))
        spool.add_block(_leaf(split, 1))
        spool.add_block(BlockRecord(node, 200, 80, b"\x4e", BlockKind.NODE, split, None, b"\x12n"))
        spool.add_range(PackedRange(split, node, 3))
        # A leaf whose range was then reported with another CID is not that range's only block.
        spool.add_block(_leaf(one, 2))
        spool.add_range(PackedRange(one, raw_cid(b"other"), 5))
        assert [r.car_offset for r in spool.ranges()] == [59, None, None]
        assert [row[0] for row in spool.blocks()] == [
            _leaf(split, 0).cid,
            _leaf(split, 1).cid,
            node,
            _leaf(one, 2).cid,
        ]
        assert spool.block_count == 4


def test_without_blocks_no_range_keeps_an_offset() -> None:
    one = JobRange(21, 0, 5, 201, "one.bin", 5, 1, 7)
    with PackSpool(keep_blocks=False) as spool:
        spool.add_block(
            BlockRecord(raw_cid(b"hello"), 59, 39, b"\x25", BlockKind.LEAF, one, 0, None)
        )
        spool.add_range(PackedRange(one, raw_cid(b"hello"), 5))
        assert [r.car_offset for r in spool.ranges()] == [None]
        assert list(spool.blocks()) == []


@pytest.mark.parametrize("keep_blocks", [True, False])
def test_a_leaf_batch_spools_what_its_leaves_one_by_one_would(keep_blocks: bool) -> None:
    one = JobRange(21, 0, 5, 201, "one.bin", 5, 1, 7)
    empty = JobRange(22, 0, 0, 202, "empty.bin", 0, 1, None)
    cids = [raw_cid(b"hello"), EMPTY_FILE_CID]
    with (
        PackSpool(keep_blocks=keep_blocks) as singly,
        PackSpool(keep_blocks=keep_blocks) as batched,
    ):
        for key, cid, offset, length in zip((one, empty), cids, (59, 100), (5, 0), strict=True):
            singly.add_block(BlockRecord(cid, offset, 1, b"", BlockKind.LEAF, key, 0, None))
            singly.add_range(PackedRange(key, cid, length))

        def never() -> tuple[bytes, list[int]]:
            raise AssertionError("the spool does not read")

        batch = LeafBatch([one, empty], [5, 0], never, lambda i: ("", 0))
        batched.add_leaves(batch, cids, [59, 100])
        assert list(batched.ranges()) == list(singly.ranges())
        assert [r.car_offset for r in batched.ranges()] == (
            [59, 100] if keep_blocks else [None] * 2
        )
        assert list(batched.blocks()) == list(singly.blocks()) == []
        assert (batched.range_count, batched.block_count) == (2, 0)
