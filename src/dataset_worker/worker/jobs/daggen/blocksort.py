"""A wide directory's blocks in CID order, sorted on disk when they do not fit a run.

The DAG piece lists a directory's blocks sorted by CID bytes (docs/formats.md#dag-piece), but a
HAMT is built children first, and a directory of millions of entries has tens of thousands of
shards, tens of megabytes of them. Blocks are kept in memory up to `RUN_BYTES`; past that each
run is sorted and written to a temporary file, and the runs are merged when read. A CID seen
twice is given once (split files can share blocks).
"""

from __future__ import annotations

import heapq
import struct
import tempfile
from collections.abc import Iterator
from typing import IO

from dataset_worker.worker.jobs.closing import Closing

RUN_BYTES = 16 << 20
FILE_BUFFER = 1 << 16
_RECORD = struct.Struct("<BI")  # cid length, block length

Block = tuple[bytes, bytes]


class SortedBlocks(Closing):
    """Collects (cid, block) pairs; iterating gives them sorted by CID, each CID once.

    A context manager that deletes its run files.
    """

    def __init__(self, run_bytes: int = RUN_BYTES) -> None:
        self.run_bytes = run_bytes
        self._run: list[Block] = []
        self._run_size = 0
        self._runs: list[IO[bytes]] = []

    def close(self) -> None:
        """Delete the run files."""
        for run in self._runs:
            run.close()
        self._runs.clear()
        self._run.clear()

    @property
    def run_count(self) -> int:
        """Runs written to disk so far."""
        return len(self._runs)

    def add(self, cid: bytes, block: bytes) -> None:
        """One block; a full run goes to disk."""
        self._run.append((cid, block))
        self._run_size += len(cid) + len(block)
        if self._run_size >= self.run_bytes:
            self._spill()

    def __iter__(self) -> Iterator[Block]:
        if self._runs and self._run:
            self._spill()
        sources = [_read_run(run) for run in self._runs] or [iter(sorted(self._run))]
        previous: bytes | None = None
        for cid, block in heapq.merge(*sources):
            if cid != previous:
                yield cid, block
                previous = cid

    def _spill(self) -> None:
        run = tempfile.TemporaryFile(buffering=FILE_BUFFER)
        for cid, block in sorted(self._run):
            run.write(_RECORD.pack(len(cid), len(block)) + cid + block)
        self._runs.append(run)
        self._run = []
        self._run_size = 0


def _read_run(run: IO[bytes]) -> Iterator[Block]:
    run.flush()
    run.seek(0)
    while header := run.read(_RECORD.size):
        cid_length, block_length = _RECORD.unpack(header)
        cid = run.read(cid_length)
        block = run.read(block_length)
        if len(cid) != cid_length or len(block) != block_length:
            raise RuntimeError("daggen block run is truncated")
        yield cid, block
