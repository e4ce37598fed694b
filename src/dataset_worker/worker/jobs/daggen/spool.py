"""A daggen job's rows on disk until the recording transaction reads them back.

Kept in lists, the `car_blocks` rows (each with its node's bytes) and the exported directories
of a whole tree grow with the number of directories: a million folders cost gigabytes. Here each
becomes a compact record appended to a temporary file, read back in order in batches, as many
times as the recording transaction is retried; memory holds one batch.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from typing import IO

from dataset_worker.db.nodebytes import stored_node
from dataset_worker.worker.jobs.closing import Closing

FILE_BUFFER = 1 << 16
BATCH = 1000  # rows per batch read back
BATCH_BYTES = 1 << 20  # a batch of blocks ends early once its node bytes reach this

# car_offset, car_block_length, cid length, varint length, stored length, compressed or not
_BLOCK = struct.Struct("<qIBBI?")
# directory id, cid length
_DIRECTORY = struct.Struct("<qB")

BlockRow = tuple[bytes, int, int, bytes, bytes | None, bytes | None]
"""(cid, car_offset, car_block_length, varint, raw_block, raw_block_zlib): car_blocks values up
to raw_block_zlib."""


class DagSpool(Closing):
    """Block rows and exported directories of one DAG piece; a context manager that deletes its
    temporary files."""

    def __init__(self, *, keep_blocks: bool = True) -> None:
        self.keep_blocks = keep_blocks
        self.block_count = 0
        self.directory_count = 0
        self._blocks: IO[bytes] = tempfile.TemporaryFile(buffering=FILE_BUFFER)
        self._directories: IO[bytes] = tempfile.TemporaryFile(buffering=FILE_BUFFER)

    def close(self) -> None:
        """Delete the temporary files."""
        self._blocks.close()
        self._directories.close()

    def add_block(
        self, cid: bytes, car_offset: int, car_block_length: int, varint: bytes, block: bytes
    ) -> None:
        """Count one block written to the CAR; keep its row unless blocks are not kept. The
        node is compressed here (`stored_node`), not in the recording transaction, which on
        SQLite holds the only write lock."""
        self.block_count += 1
        if not self.keep_blocks:
            return
        raw, zipped = stored_node(block)
        stored = zipped if zipped is not None else raw
        assert stored is not None
        header = _BLOCK.pack(
            car_offset, car_block_length, len(cid), len(varint), len(stored), zipped is not None
        )
        self._blocks.write(header + cid + varint + stored)

    def add_directory(self, directory_id: int, cid: bytes) -> None:
        """One directory exported with this CID."""
        self._directories.write(_DIRECTORY.pack(directory_id, len(cid)) + cid)
        self.directory_count += 1

    def block_batches(self) -> Iterator[list[BlockRow]]:
        """The kept block rows in CAR order, BATCH at a time (fewer when the blocks are big: a
        wide directory's node or HAMT shards are up to a few hundred KB each)."""
        stream = _rewind(self._blocks)
        count = self.block_count if self.keep_blocks else 0
        batch: list[BlockRow] = []
        size = 0
        for _ in range(count):
            car_offset, length, cid_len, varint_len, block_len, zipped = _BLOCK.unpack(
                _read(stream, _BLOCK.size)
            )
            tail = _read(stream, cid_len + varint_len + block_len)
            stored = tail[cid_len + varint_len :]
            batch.append(
                (
                    tail[:cid_len],
                    car_offset,
                    length,
                    tail[cid_len : cid_len + varint_len],
                    None if zipped else stored,
                    stored if zipped else None,
                )
            )
            size += block_len
            if len(batch) >= BATCH or size >= BATCH_BYTES:
                yield batch
                batch = []
                size = 0
        if batch:
            yield batch

    def directory_batches(self) -> Iterator[list[tuple[int, bytes]]]:
        """(directory id, CID) of the exported directories in export order, BATCH at a time."""
        stream = _rewind(self._directories)
        batch: list[tuple[int, bytes]] = []
        for _ in range(self.directory_count):
            directory_id, cid_len = _DIRECTORY.unpack(_read(stream, _DIRECTORY.size))
            batch.append((directory_id, _read(stream, cid_len)))
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def _rewind(stream: IO[bytes]) -> IO[bytes]:
    stream.flush()
    stream.seek(0)
    return stream


def _read(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise RuntimeError(f"daggen spool is truncated: wanted {size} bytes, got {len(data)}")
    return data
