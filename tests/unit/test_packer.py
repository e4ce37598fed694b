"""The data-piece assembly loop: exact CAR sizes of Singularity's tests (docs/formats.md#car-vectors), block records,
CAR read-back with every block re-hashing to its CID."""

from __future__ import annotations

import hashlib
import io
import os
import sys
from collections.abc import Hashable, Sequence
from pathlib import Path

import pytest

from dataset_worker.content._leaves import frame_leaves
from dataset_worker.content.car import CarReader, CarWriter
from dataset_worker.content.chunker import CHUNK_SIZE, BlockKind, ShortReadError
from dataset_worker.content.cid import DAG_PB_PREFIX, EMPTY_FILE_CID, RAW_PREFIX, raw_cid
from dataset_worker.content.dagpb import decode_node
from dataset_worker.content.packer import (
    BlockRecord,
    ClosableStream,
    LeafBatch,
    PackedCar,
    PackedRange,
    RangeSource,
    pack_ranges,
    write_ranges,
)
from dataset_worker.content.unixfs import assemble_file_from_links
from tests.spec_vectors import ASSEMBLER_CAR_SIZES, PACK_TEST_FILE, UNKNOWN_SIZE_FILE

MIB = 1 << 20

ALL_ASSEMBLER_FILES_CAR = 38804284


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("sources")
    paths = {}
    for size in [*ASSEMBLER_CAR_SIZES, UNKNOWN_SIZE_FILE[0], PACK_TEST_FILE[0]]:
        path = root / f"{size}.bin"
        path.write_bytes(os.urandom(size))
        paths[size] = path
    return paths


def _source(
    path: Path, offset: int = 0, length: int | None = None, key: Hashable = None
) -> RangeSource:
    def open_at_offset() -> ClosableStream:
        stream = open(path, "rb")  # the packer closes it
        stream.seek(offset)
        return stream

    size = path.stat().st_size - offset if length is None else length
    return RangeSource(key or (path.name, offset), offset, size, open_at_offset, str(path))


def _pack(sources: Sequence[RangeSource | LeafBatch]) -> tuple[PackedCar, bytes]:
    out = io.BytesIO()
    packed = pack_ranges(sources, CarWriter(out))
    return packed, out.getvalue()


def _assert_reads_back(packed: PackedCar, car: bytes) -> None:
    """Every block re-hashes to its CID and sits where its record says."""
    reader = CarReader(io.BytesIO(car))
    assert reader.roots == [packed.root_cid]
    blocks = list(reader)
    assert len(blocks) == len(packed.blocks)
    for block, record in zip(blocks, packed.blocks, strict=True):
        digest = hashlib.sha256(block.data).digest()
        assert block.cid in (RAW_PREFIX + digest, DAG_PB_PREFIX + digest)
        assert (block.cid, block.car_offset) == (record.cid, record.car_offset)
        section = car[record.car_offset : record.car_offset + record.car_block_length]
        assert section == record.varint + block.cid + block.data
        if record.kind is BlockKind.NODE:
            assert record.raw_block == block.data and record.file_offset is None
        else:
            assert record.raw_block is None and record.file_offset is not None
    assert packed.car_size == len(car)


@pytest.mark.parametrize(("size", "car_size"), sorted(ASSEMBLER_CAR_SIZES.items()))
def test_single_file_car_sizes(files: dict[int, Path], size: int, car_size: int) -> None:
    packed, car = _pack([_source(files[size])])
    assert len(car) == packed.car_size == car_size
    _assert_reads_back(packed, car)
    [result] = packed.ranges
    assert result.length == size


def test_unknown_size_file_measures_its_length(files: dict[int, Path]) -> None:
    size, car_size = UNKNOWN_SIZE_FILE
    packed, car = _pack([_source(files[size], length=-1)])
    assert len(car) == car_size
    assert packed.ranges[0].length == size


def test_pack_test_file_size(files: dict[int, Path]) -> None:
    size, car_size = PACK_TEST_FILE
    packed, car = _pack([_source(files[size])])
    assert len(car) == car_size
    _assert_reads_back(packed, car)


def test_all_eleven_assembler_files_in_one_car(files: dict[int, Path]) -> None:
    # As the Go test orders them: by size, the 2048-byte file with an unknown length.
    sizes = sorted([*ASSEMBLER_CAR_SIZES, UNKNOWN_SIZE_FILE[0]])
    sources = [
        _source(files[size], length=-1 if size == UNKNOWN_SIZE_FILE[0] else None) for size in sizes
    ]
    packed, car = _pack(sources)
    assert len(car) == ALL_ASSEMBLER_FILES_CAR
    assert packed.root_cid == EMPTY_FILE_CID  # the first block written: the empty file's
    _assert_reads_back(packed, car)
    assert [r.length for r in packed.ranges] == sizes
    for result, size in zip(packed.ranges, sizes, strict=True):
        if 0 < size <= CHUNK_SIZE:
            assert result.cid == raw_cid(files[size].read_bytes())


def test_split_file_ranges_make_a_138_byte_car_without_a_parent_node(tmp_path: Path) -> None:
    path = tmp_path / "five.bin"
    path.write_bytes(b"hello")
    packed, car = _pack([_source(path, 0, 2), _source(path, 2, 3)])
    assert len(car) == 138
    assert [block.kind for block in packed.blocks] == [BlockKind.LEAF, BlockKind.LEAF]
    assert [r.cid for r in packed.ranges] == [raw_cid(b"he"), raw_cid(b"llo")]
    assert [block.file_offset for block in packed.blocks] == [0, 2]
    # The file CID links the ranges; its node is not part of this data CAR.
    file_dag = assemble_file_from_links([(raw_cid(b"he"), 2), (raw_cid(b"llo"), 3)])
    assert file_dag.root_cid not in {block.cid for block in packed.blocks}


def test_block_records_of_a_multi_chunk_range(files: dict[int, Path]) -> None:
    packed, car = _pack([_source(files[2 * MIB + 1], key="f")])
    assert [(b.kind, b.file_offset, b.range_key) for b in packed.blocks] == [
        (BlockKind.LEAF, 0, "f"),
        (BlockKind.LEAF, MIB, "f"),
        (BlockKind.LEAF, 2 * MIB, "f"),
        (BlockKind.NODE, None, "f"),
    ]
    node = packed.blocks[-1]
    assert node.raw_block is not None
    assert node.cid == packed.ranges[0].cid
    assert [link.tsize for link in decode_node(node.raw_block).links] == [MIB, MIB, 1]
    assert packed.blocks[0].car_offset == 59
    assert packed.blocks[0].varint == b"\xa4\x80\x40"
    _assert_reads_back(packed, car)


class _TrackedStream(io.BytesIO):
    closed_count = 0

    def close(self) -> None:
        _TrackedStream.closed_count += 1
        super().close()


def test_skipped_ranges_add_nothing_and_streams_are_closed() -> None:
    _TrackedStream.closed_count = 0
    sources = [
        RangeSource("gone", 0, 5, lambda: None),
        RangeSource("a", 0, 3, lambda: _TrackedStream(b"abc")),
        RangeSource("b", 0, 2, lambda: _TrackedStream(b"de")),
    ]
    packed, car = _pack(sources)
    assert [(r.key, r.cid) for r in packed.ranges] == [
        ("gone", None),
        ("a", raw_cid(b"abc")),
        ("b", raw_cid(b"de")),
    ]
    assert packed.root_cid == raw_cid(b"abc")
    assert _TrackedStream.closed_count == 2
    _assert_reads_back(packed, car)


def test_all_ranges_skipped_leaves_an_empty_car() -> None:
    packed, car = _pack([RangeSource("gone", 0, 5, lambda: None)])
    assert (packed.root_cid, packed.car_size, car, packed.blocks) == (None, 0, b"", [])


def test_tee_hashes_exactly_the_car_bytes(files: dict[int, Path]) -> None:
    digest = hashlib.sha256()
    out = io.BytesIO()
    pack_ranges([_source(files[2 * MIB - 1])], CarWriter(out, tee=digest.update))
    assert digest.digest() == hashlib.sha256(out.getvalue()).digest()


def test_read_ahead_off_writes_the_same_car_and_records(files: dict[int, Path]) -> None:
    sizes = [0, 1024, 2 * MIB + 1, 10 * MIB]
    results = []
    for read_ahead in (True, False):
        out = io.BytesIO()
        packed = pack_ranges(
            [_source(files[size]) for size in sizes], CarWriter(out), read_ahead=read_ahead
        )
        results.append((packed, out.getvalue()))
    (on, car_on), (off, car_off) = results
    assert car_off == car_on
    assert off == on
    _assert_reads_back(off, car_off)


def test_write_ranges_hands_results_to_the_sink_as_they_come(files: dict[int, Path]) -> None:
    events: list[tuple[str, Hashable]] = []

    class Sink:
        def add_block(self, record: BlockRecord, /) -> None:
            events.append(("block", record.range_key))

        def add_range(self, packed: PackedRange, /) -> None:
            events.append(("range", packed.key))

        def add_leaves(self, batch: LeafBatch, cids: list[bytes], offsets: list[int], /) -> None:
            events.append(("leaves", tuple(batch.keys)))

    writer = CarWriter(io.BytesIO())
    sources: list[RangeSource | LeafBatch] = [
        _source(files[2 * MIB + 1], key="big"),
        RangeSource("gone", 0, 5, lambda: None),
        _source(files[1], key="one"),
        _leaf_batch([(files[1], 0, 1), (files[1], 0, 1)]),
    ]
    write_ranges(sources, writer, Sink(), read_ahead=False)
    assert events == [
        *[("block", "big")] * 4,
        ("range", "big"),
        ("range", "gone"),
        ("block", "one"),
        ("range", "one"),
        ("leaves", (("1.bin", 0), ("1.bin", 0))),
    ]
    one_byte_leaf = 1 + 36 + 1
    assert writer.bytes_written == ASSEMBLER_CAR_SIZES[2 * MIB + 1] + 97 - 59 + 2 * one_byte_leaf


def _leaf_batch(ranges: list[tuple[Path, int, int]]) -> LeafBatch:
    """`(path, offset, length)` ranges of at most one chunk as one batch, keyed as `_source` keys
    them, read one file at a time."""

    def read() -> tuple[bytes, list[int]]:
        parts = []
        for path, offset, length in ranges:
            with open(path, "rb") as stream:
                stream.seek(offset)
                parts.append(stream.read(length))
        return b"".join(parts), [len(part) for part in parts]

    return LeafBatch(
        [(path.name, offset) for path, offset, _ in ranges],
        [length for _, _, length in ranges],
        read,
        lambda i: (str(ranges[i][0]), ranges[i][1]),
    )


def test_leaf_batches_write_the_same_car_and_records(
    files: dict[int, Path], tmp_path: Path
) -> None:
    # Every size the assembler vectors have: the ones of at most a chunk (the empty file and one
    # chunk exactly among them) in batches, the bigger ones in between through the chunker, and a
    # range in the middle of a file. The first batch opens the CAR (its first leaf is the root).
    sizes = sorted(ASSEMBLER_CAR_SIZES)
    middle = tmp_path / "middle.bin"
    middle.write_bytes(os.urandom(5000))
    plain = [_source(files[size]) for size in sizes] + [_source(middle, 1000, 2000)]
    batched: list[RangeSource | LeafBatch] = []
    pending: list[tuple[Path, int, int]] = []
    for source in plain:
        path = Path(source.label)
        if source.length <= CHUNK_SIZE:
            pending.append((path, source.offset, source.length))
            continue
        if pending:
            batched.append(_leaf_batch(pending))
            pending = []
        batched.append(source)
    batched.append(_leaf_batch(pending))
    assert isinstance(batched[0], LeafBatch) and len(batched) >= 3
    (expected, expected_car), (got, got_car) = _pack(plain), _pack(batched)
    assert got_car == expected_car
    assert got == expected
    assert any(r.cid == EMPTY_FILE_CID for r in got.ranges)
    _assert_reads_back(got, got_car)


def test_a_leaf_batch_short_read_names_the_range() -> None:
    def read() -> tuple[bytes, list[int]]:
        return b"abcxyz", [3, 3]

    batch = LeafBatch(["a", "s"], [3, 5], read, lambda i: (["a.bin", "short.bin"][i], 10 * i))
    with pytest.raises(
        ShortReadError, match=r"range \[10, 15\) of short.bin: the source ended at offset 13"
    ):
        _pack([batch])


def test_frame_leaves_refuses_lengths_past_its_data() -> None:
    with pytest.raises(ValueError, match="leaf 1: length 3 does not fit the 2 bytes"):
        frame_leaves(b"abcde", [3, 3], 0)
    with pytest.raises(ValueError, match="leaf 0: length -1"):
        frame_leaves(b"abcde", [-1], 0)
    assert frame_leaves(b"", [], 59) == (b"", [], [])


def test_frame_leaves_hands_over_its_results_without_keeping_a_reference() -> None:
    # A reference kept by the C code is a leak of every CID of a pack job (it once was one).
    sections, cids, offsets = frame_leaves(b"abc", [1, 2], 59)
    assert [sys.getrefcount(sections), sys.getrefcount(cids), sys.getrefcount(offsets)] == [2] * 3
