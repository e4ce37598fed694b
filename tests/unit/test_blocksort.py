"""daggen's on-disk block sort: CID order, each CID once, the same with one run or many."""

from __future__ import annotations

import hashlib

from dataset_worker.worker.jobs.daggen.blocksort import SortedBlocks


def _blocks(count: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(count):
        body = b"block %d " % i * (1 + i % 7)
        out.append((hashlib.sha256(body).digest(), body))
    return out


def test_runs_on_disk_merge_to_the_sorted_blocks_without_repeats() -> None:
    blocks = _blocks(2000)
    expected = sorted(set(blocks))
    with SortedBlocks(run_bytes=4096) as on_disk, SortedBlocks() as in_memory:
        for cid, block in blocks + blocks[::3]:  # every third block twice
            on_disk.add(cid, block)
            in_memory.add(cid, block)
        assert on_disk.run_count > 10
        assert in_memory.run_count == 0
        assert list(on_disk) == expected
        assert list(in_memory) == expected
        assert list(on_disk) == expected  # read again: the runs are rewound


def test_no_blocks() -> None:
    with SortedBlocks(run_bytes=1) as empty:
        assert list(empty) == []
