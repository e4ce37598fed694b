"""The data-piece assembly loop of a pack job (docs/formats.md#chunking-and-leaves), free of DB and storage.

Each range is read from a stream the caller opens, cut into blocks in Singularity's order and
written to the CAR as the blocks are produced. What the DB layer records (range CIDs and
measured lengths, one record per block for the car_blocks rows) goes to a sink as it is made.
Ranges of at most one chunk can also come as a `LeafBatch`: read, hashed and framed together,
which is what keeps a job of tiny files from costing a dozen Python calls per file.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from dataset_worker.content.car import CarWriter, section_at
from dataset_worker.content.chunker import (
    CHUNK_SIZE,
    BlockKind,
    Digest,
    RangeChunker,
    ReadableStream,
    ShortReadError,
)


class ClosableStream(ReadableStream, Protocol):
    """A readable stream the packer closes when the range is done."""

    def close(self) -> None: ...


class RangeSource(NamedTuple):
    """One file range to pack.

    `open` returns a stream already positioned at `offset` (it is closed after the range), or
    None to skip the range (an inaccessible file with skipInaccessibleFile set). `key` is opaque
    to the packer and comes back in the results; `label` names the file in errors. `digest`, when
    set, is fed the range's bytes as they are read (a whole-file hash the caller keeps).
    """

    key: Hashable
    offset: int
    length: int
    open: Callable[[], ClosableStream | None]
    label: str = ""
    digest: Digest | None = None


class LeafBatch(NamedTuple):
    """Consecutive ranges of known length of at most one chunk each: one raw leaf each.

    `read` returns their bytes one after the other and the length read of each range (fewer
    than asked only where a file ended early, which is an error); it raises as `open` would.
    `locate(i)` names range i in errors: its label and offset. No range of a batch feeds a
    running digest: the caller keeps those ranges out (a whole tiny file needs none, its CID
    already is its sha256).
    """

    keys: Sequence[Hashable]
    lengths: list[int]
    read: Callable[[], tuple[bytes, list[int]]]
    locate: Callable[[int], tuple[str, int]]


class PackedRange(NamedTuple):
    """A packed range: its root CID and measured length, or cid None if it was skipped."""

    key: Hashable
    cid: bytes | None
    length: int


class BlockRecord(NamedTuple):
    """One car_blocks row: `raw_block` is set for dag-pb nodes only; leaves keep `file_offset`."""

    cid: bytes
    car_offset: int
    car_block_length: int
    varint: bytes
    kind: BlockKind
    range_key: Hashable
    file_offset: int | None
    raw_block: bytes | None


class PackSink(Protocol):
    """Where `write_ranges` hands its results, as they are produced."""

    def add_block(self, record: BlockRecord, /) -> None: ...

    def add_range(self, packed: PackedRange, /) -> None: ...

    def add_leaves(self, batch: LeafBatch, cids: list[bytes], car_offsets: list[int], /) -> None:
        """A `LeafBatch`'s results: range i is the one leaf `cids[i]` of `batch.lengths[i]`
        bytes at CAR offset `car_offsets[i]` (what `add_block`, then `add_range`, would say)."""
        ...


@dataclass(slots=True)
class PackedCar:
    """What a data CAR holds: its root (the first block's CID), size, ranges and blocks.

    It is also a `PackSink` that keeps everything in lists: fine for a few ranges; a pack job
    of many files hands `write_ranges` a sink that spools to disk instead.
    """

    root_cid: bytes | None = None
    car_size: int = 0
    ranges: list[PackedRange] = field(default_factory=list)
    blocks: list[BlockRecord] = field(default_factory=list)

    def add_block(self, record: BlockRecord, /) -> None:
        """Keep one block record."""
        self.blocks.append(record)

    def add_range(self, packed: PackedRange, /) -> None:
        """Keep one range result."""
        self.ranges.append(packed)

    def add_leaves(self, batch: LeafBatch, cids: list[bytes], car_offsets: list[int], /) -> None:
        """Keep a batch of one-leaf ranges as their block records and range results."""
        for i, key in enumerate(batch.keys):
            cid, length = cids[i], batch.lengths[i]
            location = section_at(car_offsets[i], cid, length)
            record = BlockRecord(
                cid,
                location.car_offset,
                location.car_block_length,
                location.varint,
                BlockKind.LEAF,
                key,
                batch.locate(i)[1],
                None,
            )
            self.blocks.append(record)
            self.ranges.append(PackedRange(key, cid, length))


def pack_ranges(
    ranges: Iterable[RangeSource | LeafBatch], writer: CarWriter, *, read_ahead: bool = True
) -> PackedCar:
    """`write_ranges` into lists: the CAR's root, size, every range and every block record."""
    packed = PackedCar()
    write_ranges(ranges, writer, packed, read_ahead=read_ahead)
    packed.root_cid = writer.root
    packed.car_size = writer.bytes_written
    return packed


def write_ranges(
    ranges: Iterable[RangeSource | LeafBatch],
    writer: CarWriter,
    sink: PackSink,
    *,
    read_ahead: bool = True,
) -> None:
    """Write every range's blocks into `writer` (which should have a lazy root) in order.

    Each block's record goes to `sink.add_block` right after the block is written, and each
    range's result to `sink.add_range` after its last block, so memory does not grow with the
    number of ranges. Ranges whose `open` returns None are reported with cid None and add no
    block. The CAR root (`writer.root`) is the CID of the first block written; if no block was
    written it stays None and the CAR is empty. `read_ahead` is passed to `RangeChunker`.
    A `LeafBatch` goes to `sink.add_leaves` once all its leaves are written.
    """
    buffer = bytearray(CHUNK_SIZE)
    for source in ranges:
        if isinstance(source, LeafBatch):
            _write_leaves(source, writer, sink)
            continue
        stream = source.open()
        if stream is None:
            sink.add_range(PackedRange(source.key, None, source.length))
            continue
        chunker = RangeChunker(
            stream,
            source.offset,
            source.length,
            label=source.label,
            buffer=buffer,
            read_ahead=read_ahead,
            digest=source.digest,
        )
        # Close the block generator before the stream: it stops the chunker's read-ahead thread.
        with closing(stream), closing(iter(chunker)) as blocks:
            for block in blocks:
                location = writer.write_block(block.cid, block.data)
                is_node = block.kind is BlockKind.NODE
                sink.add_block(
                    BlockRecord(
                        cid=block.cid,
                        car_offset=location.car_offset,
                        car_block_length=location.car_block_length,
                        varint=location.varint,
                        kind=block.kind,
                        range_key=source.key,
                        file_offset=block.file_offset,
                        raw_block=bytes(block.data) if is_node else None,
                    )
                )
        sink.add_range(PackedRange(source.key, chunker.cid, chunker.length))


def _write_leaves(batch: LeafBatch, writer: CarWriter, sink: PackSink) -> None:
    """A batch of one-leaf ranges: the leaves and records `RangeChunker` would make one range
    at a time (the empty range's leaf is the empty block, whose CID is EMPTY_FILE_CID)."""
    data, got = batch.read()
    if got != batch.lengths:
        i = next(i for i, (a, b) in enumerate(zip(got, batch.lengths, strict=True)) if a != b)
        label, offset = batch.locate(i)
        raise _short_read(label, offset, batch.lengths[i], got[i])
    cids, car_offsets = writer.write_leaves(data, got)
    sink.add_leaves(batch, cids, car_offsets)


def _short_read(label: str, offset: int, length: int, got: int) -> ShortReadError:
    where = f" of {label}" if label else ""
    return ShortReadError(
        f"range [{offset}, {offset + length}){where}: the source ended at offset {offset + got}, "
        f"{length - got} bytes early (the file shrank or changed while read)"
    )
