"""Cutting one range into leaves and parent nodes in Singularity's order (docs/formats.md#chunking-and-leaves)."""

from __future__ import annotations

import io
import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset_worker.content.chunker import (
    CHUNK_SIZE,
    PREFETCH_BUFFERS,
    BlockKind,
    RangeChunker,
    ShortReadError,
    stream_file_cid,
)
from dataset_worker.content.cid import EMPTY_FILE_CID, cid_to_str, dag_pb_cid, raw_cid
from dataset_worker.content.dagpb import decode_node
from dataset_worker.content.unixfs import assemble_file_from_links, decode_data


def _collect(chunker: RangeChunker) -> list[tuple[bytes, bytes, BlockKind, int | None]]:
    # Copy each block's data: the view is only valid until the next block.
    return [(b.cid, bytes(b.data), b.kind, b.file_offset) for b in chunker]


class _TrickleReader(io.RawIOBase):
    """A stream that returns at most `step` bytes per readinto, like a pipe or a socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        view = memoryview(buffer)  # type: ignore[arg-type]
        chunk = self._data[self._pos : self._pos + min(self._step, len(view))]
        view[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def test_empty_file_is_one_empty_block_with_the_empty_file_cid() -> None:
    chunker = RangeChunker(io.BytesIO(b""), 0, 0)
    assert _collect(chunker) == [(EMPTY_FILE_CID, b"", BlockKind.LEAF, 0)]
    assert (chunker.cid, chunker.length) == (EMPTY_FILE_CID, 0)
    assert (
        cid_to_str(EMPTY_FILE_CID) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    )


def test_one_chunk_range_is_its_leaf() -> None:
    chunker = RangeChunker(io.BytesIO(b"x"), 0, 1)
    assert _collect(chunker) == [(raw_cid(b"x"), b"x", BlockKind.LEAF, 0)]
    assert chunker.cid == raw_cid(b"x")


def test_exactly_one_mib_makes_one_leaf_and_no_node() -> None:
    data = os.urandom(CHUNK_SIZE)
    chunker = RangeChunker(io.BytesIO(data), 0, CHUNK_SIZE)
    blocks = _collect(chunker)
    assert [kind for _, _, kind, _ in blocks] == [BlockKind.LEAF]
    assert chunker.cid == raw_cid(data)


def test_leaves_then_parent_node() -> None:
    data = os.urandom(2 * CHUNK_SIZE + 1)
    chunker = RangeChunker(io.BytesIO(data), 0, len(data))
    blocks = _collect(chunker)
    assert [(kind, offset) for _, _, kind, offset in blocks] == [
        (BlockKind.LEAF, 0),
        (BlockKind.LEAF, CHUNK_SIZE),
        (BlockKind.LEAF, 2 * CHUNK_SIZE),
        (BlockKind.NODE, None),
    ]
    assert b"".join(block for _, block, kind, _ in blocks if kind is BlockKind.LEAF) == data
    node_cid, node_block, _, _ = blocks[-1]
    assert node_cid == dag_pb_cid(node_block) == chunker.cid
    node = decode_node(node_block)
    assert [link.cid for link in node.links] == [cid for cid, _, _, _ in blocks[:3]]
    assert decode_data(node.data or b"").blocksizes == (CHUNK_SIZE, CHUNK_SIZE, 1)
    assert chunker.length == len(data)


def test_chunking_restarts_at_the_range_start() -> None:
    data = bytes(range(40))
    stream = io.BytesIO(data)
    stream.seek(5)
    chunker = RangeChunker(stream, 5, 10, chunk_size=4)
    blocks = _collect(chunker)
    leaves = [(block, offset) for _, block, kind, offset in blocks if kind is BlockKind.LEAF]
    assert leaves == [(data[5:9], 5), (data[9:13], 9), (data[13:15], 13)]
    assert stream.tell() == 15  # nothing read past the range
    assert (
        chunker.cid == assemble_file_from_links([(raw_cid(b), len(b)) for b, _ in leaves]).root_cid
    )


def test_unknown_length_reads_to_eof_and_reports_it() -> None:
    chunker = RangeChunker(io.BytesIO(b"abcdefghij"), 0, -1, chunk_size=4)
    blocks = _collect(chunker)
    assert [block for _, block, kind, _ in blocks if kind is BlockKind.LEAF] == [
        b"abcd",
        b"efgh",
        b"ij",
    ]
    assert chunker.length == 10


def test_unknown_length_ending_on_a_chunk_boundary_adds_no_empty_block() -> None:
    chunker = RangeChunker(io.BytesIO(b"abcdefgh"), 0, -1, chunk_size=4)
    kinds = [kind for _, _, kind, _ in _collect(chunker)]
    assert kinds == [BlockKind.LEAF, BlockKind.LEAF, BlockKind.NODE]
    assert chunker.length == 8


def test_unknown_length_of_an_empty_file() -> None:
    chunker = RangeChunker(io.BytesIO(b""), 0, -1)
    assert _collect(chunker) == [(EMPTY_FILE_CID, b"", BlockKind.LEAF, 0)]
    assert chunker.length == 0


def test_short_reads_are_filled_like_io_readfull() -> None:
    data = os.urandom(10_000)
    chunker = RangeChunker(_TrickleReader(data, 7), 0, len(data), chunk_size=4096)
    assert [len(block) for _, block, kind, _ in _collect(chunker) if kind is BlockKind.LEAF] == [
        4096,
        4096,
        1808,
    ]


def test_a_file_that_shrank_is_a_clear_error() -> None:
    chunker = RangeChunker(io.BytesIO(b"abc"), 0, 10, label="dir/a.bin", chunk_size=4)
    with pytest.raises(ShortReadError, match=r"range \[0, 10\) of dir/a\.bin: the source ended"):
        _collect(chunker)


def test_a_single_chunk_range_reads_into_the_given_buffer() -> None:
    buffer = bytearray(8)
    chunker = RangeChunker(io.BytesIO(b"abcd"), 0, 4, buffer=buffer, chunk_size=8)
    [block] = list(chunker)
    assert block.data.obj is buffer
    assert buffer[:4] == b"abcd"


def test_read_ahead_keeps_each_view_valid_until_the_next_block() -> None:
    data = os.urandom(4 * 500)
    buffer = bytearray(4)
    chunker = RangeChunker(io.BytesIO(data), 0, len(data), buffer=buffer, chunk_size=4)
    owners = set()
    for block in chunker:
        if block.kind is BlockKind.LEAF:
            owners.add(id(block.data.obj))
            expected = data[block.file_offset or 0 :][:4]
            assert bytes(block.data) == expected  # not overwritten by the reader thread
            assert raw_cid(block.data) == block.cid
    assert id(buffer) in owners
    assert len(owners) == PREFETCH_BUFFERS


def _read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "chunk-read-ahead"]


def test_read_ahead_stops_when_the_consumer_stops() -> None:
    chunker = RangeChunker(io.BytesIO(bytes(4000)), 0, 4000, chunk_size=4)
    blocks = iter(chunker)
    next(blocks)
    assert len(_read_ahead_threads()) == 1
    blocks.close()
    assert _read_ahead_threads() == []


def test_read_errors_reach_the_consumer() -> None:
    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: object) -> int:
            raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        list(RangeChunker(Failing(), 0, 100, chunk_size=4))
    assert _read_ahead_threads() == []


def test_results_are_only_available_after_chunking() -> None:
    chunker = RangeChunker(io.BytesIO(b"abc"), 0, 3)
    with pytest.raises(RuntimeError, match=r"range \[0, 3\) has not been fully chunked"):
        _ = chunker.cid
    with pytest.raises(RuntimeError, match="not been fully chunked"):
        _ = chunker.length
    _collect(chunker)
    with pytest.raises(RuntimeError, match="only be chunked once"):
        iter(chunker)


@pytest.mark.parametrize(
    ("offset", "length", "chunk_size", "message"),
    [
        (-1, 0, 4, "offset must not be negative"),
        (0, -2, 4, "length must be -1"),
        (0, 1, 0, "chunk size must be positive"),
    ],
)
def test_bad_arguments_are_refused(offset: int, length: int, chunk_size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RangeChunker(io.BytesIO(b""), offset, length, chunk_size=chunk_size)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=200), chunk_size=st.integers(1, 64))
def test_leaves_reassemble_the_range(data: bytes, chunk_size: int) -> None:
    chunker = RangeChunker(io.BytesIO(data), 0, len(data), chunk_size=chunk_size)
    blocks = list(_collect(chunker))
    leaves = [(cid, block) for cid, block, kind, _ in blocks if kind is BlockKind.LEAF]
    assert b"".join(block for _, block in leaves) == data
    assert all(cid == raw_cid(block) for cid, block in leaves)
    nodes = [cid for cid, _, kind, _ in blocks if kind is BlockKind.NODE]
    if len(leaves) > 1:
        assert nodes[-1] == chunker.cid
    else:
        assert nodes == [] and chunker.cid == leaves[0][0]


def test_file_cid_of_one_range_is_the_range_root() -> None:
    data = os.urandom(3 * CHUNK_SIZE)
    chunker = RangeChunker(io.BytesIO(data), 0, len(data))
    _collect(chunker)
    assert stream_file_cid(io.BytesIO(data), len(data)) == chunker.cid


def test_file_cid_of_several_ranges_links_the_range_roots() -> None:
    data = b"0123456789"
    seen: list[int] = []
    cid = stream_file_cid(io.BytesIO(data), 10, range_size=4, on_progress=seen.append)
    expected = assemble_file_from_links(
        [(raw_cid(b"0123"), 4), (raw_cid(b"4567"), 4), (raw_cid(b"89"), 2)]
    )
    assert cid == expected.root_cid
    assert seen == [4, 4, 2]


def test_file_cid_of_an_empty_file() -> None:
    assert stream_file_cid(io.BytesIO(b""), 0) == EMPTY_FILE_CID


def test_file_cid_refuses_bad_sizes() -> None:
    with pytest.raises(ValueError, match="file size must not be negative"):
        stream_file_cid(io.BytesIO(b""), -1)
    with pytest.raises(ValueError, match="range size must be positive"):
        stream_file_cid(io.BytesIO(b""), 0, range_size=0)


@pytest.mark.parametrize("size", [0, 3, 4, 9, 4 * 37 + 1])
def test_read_ahead_off_gives_the_same_blocks(size: int) -> None:
    data = os.urandom(size)
    on = RangeChunker(io.BytesIO(data), 0, size, chunk_size=4)
    off = RangeChunker(io.BytesIO(data), 0, size, chunk_size=4, read_ahead=False)
    assert _collect(off) == _collect(on)
    assert (off.cid, off.length) == (on.cid, on.length)


def test_read_ahead_off_starts_no_thread_and_reuses_one_buffer() -> None:
    buffer = bytearray(4)
    chunker = RangeChunker(
        io.BytesIO(bytes(400)), 0, 400, buffer=buffer, chunk_size=4, read_ahead=False
    )
    owners = set()
    for block in chunker:
        assert _read_ahead_threads() == []
        if block.kind is BlockKind.LEAF:
            owners.add(id(block.data.obj))
    assert owners == {id(buffer)}
