"""A pack job's results on disk until the recording transaction reads them back.

`write_ranges` hands over one block record per CAR block and one result per range. A range that
is one raw leaf keeps its block's CAR offset on its own result instead of a block row
(docs/architecture.md#one-leaf-ranges): the leaf is held back until the next record shows
whether it was its range's only block.

Kept as Python objects the records cost ~1 KB per file; here each becomes a row tuple, and
every BATCH rows are pickled to a temporary file, so a job's memory stays flat whatever its
number of files. The rows are read back in order, a batch per `pickle.load` (C speed: reading
them back happens inside the recording transaction, which on SQLite holds the database's only
write lock), as many times as that transaction is retried.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

from dataset_worker.content.chunker import BlockKind
from dataset_worker.content.packer import BlockRecord, LeafBatch, PackedRange
from dataset_worker.worker.jobs.closing import Closing

FILE_BUFFER = 1 << 16
BATCH = 1000  # rows per pickled batch
SHA256_SIZE = 32

BlockRow = tuple[bytes, int, int, bytes, bytes | None, int | None, int | None]
"""(cid, car_offset, car_block_length, varint, raw_block, file_offset, file_id)."""


class JobRange(NamedTuple):
    """One range of the job with its file, as loaded before packing (the packer's range key)."""

    range_id: int
    offset: int
    length: int
    file_id: int
    path: str
    file_size: int
    mtime_ns: int
    directory_id: int | None
    source_hash: str = ""  # files.hash: the storage's version tag (S3 ETag), or ""

    @property
    def whole_file(self) -> bool:
        """The range covers its whole file (the file CID is the range CID); a range of unknown
        length (-1) always does."""
        return self.offset == 0 and (self.length == self.file_size or self.length == -1)


class SpooledRange(NamedTuple):
    """A packed range as the recording transaction needs it."""

    range_id: int
    file_id: int
    cid: bytes | None
    length: int  # measured
    directory_id: int | None
    path: str
    whole_file: bool
    unknown_length: bool  # the scan did not know the size: the file is what was read
    sha256: bytes | None = None  # the whole file's, when this range completed its hash
    car_offset: int | None = None  # the range is one leaf, without a block row: where it sits


class _Rows:
    """Row tuples appended in memory and pickled to a temporary file a batch at a time."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(buffering=FILE_BUFFER)
        self._pending: list[tuple[Any, ...]] = []

    def close(self) -> None:
        self._file.close()

    def append(self, row: tuple[Any, ...]) -> None:
        self._pending.append(row)
        if len(self._pending) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._file.seek(0, os.SEEK_END)
            pickle.dump(self._pending, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._pending = []

    def read(self, count: int) -> Iterator[tuple[Any, ...]]:
        """The first `count` rows, in order."""
        self._flush()
        self._file.flush()
        self._file.seek(0)
        left = count
        while left > 0:
            try:
                # Only ever our own temporary file: nothing else writes what is unpickled.
                batch: list[tuple[Any, ...]] = pickle.load(self._file)
            except EOFError:
                raise RuntimeError(
                    f"pack spool is truncated: {left} of {count} records are missing"
                ) from None
            yield from batch[:left]
            left -= len(batch)


class PackSpool(Closing):
    """A `PackSink` that appends to temporary files; a context manager that deletes them.

    Range keys must be the job's `JobRange`s. With `keep_blocks` False (no car_blocks rows are
    wanted) block records are dropped and no range keeps a CAR offset.
    """

    def __init__(self, *, keep_blocks: bool = True) -> None:
        self.keep_blocks = keep_blocks
        self.range_count = 0
        self.block_count = 0  # block rows: one-leaf ranges keep none
        self._blocks = _Rows()
        self._ranges = _Rows()
        self._leaf: BlockRecord | None = None  # the last leaf, until we know if it is a range

    def close(self) -> None:
        """Delete the temporary files."""
        self._blocks.close()
        self._ranges.close()

    def add_block(self, record: BlockRecord, /) -> None:
        """Take one block record: leaves point into their file, nodes carry their bytes."""
        if not self.keep_blocks:
            return
        self._release_leaf()
        if record.kind is BlockKind.LEAF:
            self._leaf = record
            return
        self._append_block(
            (
                record.cid,
                record.car_offset,
                record.car_block_length,
                record.varint,
                record.raw_block or None,
                None,
                None,
            )
        )

    def add_range(self, packed: PackedRange, /, sha256: bytes | None = None) -> None:
        """Append one range result with what the recording needs of its file; `sha256` is the
        whole file's hash when this range was its last and every byte before it was hashed."""
        job_range: JobRange = packed.key  # type: ignore[assignment]
        if sha256 is not None and len(sha256) != SHA256_SIZE:
            raise ValueError(f"a sha256 digest has {SHA256_SIZE} bytes, got {len(sha256)}")
        car_offset = self._own_leaf(packed)
        self._ranges.append(
            (
                job_range.range_id,
                job_range.file_id,
                packed.cid,
                packed.length,
                job_range.directory_id,
                job_range.path,
                job_range.whole_file,
                job_range.length == -1,
                sha256,
                car_offset,
            )
        )
        self.range_count += 1

    def add_leaves(self, batch: LeafBatch, cids: list[bytes], car_offsets: list[int], /) -> None:
        """Append a batch of one-leaf ranges: each keeps its CAR offset and no block row."""
        self._release_leaf()
        keep = self.keep_blocks
        append = self._ranges.append
        for job_range, cid, length, car_offset in zip(
            batch.keys, cids, batch.lengths, car_offsets, strict=True
        ):
            r: JobRange = job_range  # type: ignore[assignment]
            append(
                (
                    r.range_id,
                    r.file_id,
                    cid,
                    length,
                    r.directory_id,
                    r.path,
                    r.whole_file,
                    False,  # a batch holds ranges of known length only
                    None,
                    car_offset if keep else None,
                )
            )
        self.range_count += len(cids)

    def blocks(self) -> Iterator[BlockRow]:
        """Every block row, in CAR order."""
        self._release_leaf()
        return self._blocks.read(self.block_count)

    def ranges(self) -> Iterator[SpooledRange]:
        """Every range result, in packing order."""
        for row in self.range_rows():
            yield SpooledRange(*row)

    def range_rows(self) -> Iterator[tuple[Any, ...]]:
        """`ranges()` as plain tuples in SpooledRange's field order, for the recording
        transaction: it unpacks one per file while it holds SQLite's write lock, where building
        a named tuple per row is time no other job can write."""
        return self._ranges.read(self.range_count)

    def _own_leaf(self, packed: PackedRange) -> int | None:
        """The CAR offset of the held leaf if it is this whole range (its only block), which
        then keeps no block row; otherwise the held leaf becomes a row and None is returned."""
        leaf = self._leaf
        if leaf is not None and leaf.range_key is packed.key and leaf.cid == packed.cid:
            self._leaf = None
            return leaf.car_offset
        self._release_leaf()
        return None

    def _release_leaf(self) -> None:
        """The held leaf is one of several blocks of its range: spool its block row."""
        leaf = self._leaf
        if leaf is None:
            return
        self._leaf = None
        job_range: JobRange = leaf.range_key  # type: ignore[assignment]
        self._append_block(
            (
                leaf.cid,
                leaf.car_offset,
                leaf.car_block_length,
                leaf.varint,
                None,
                leaf.file_offset,
                job_range.file_id,
            )
        )

    def _append_block(self, row: BlockRow) -> None:
        self._blocks.append(row)
        self.block_count += 1
