"""The in-memory ring buffer of worker output and `tail` lines."""

from __future__ import annotations

from pathlib import Path

from dataset_worker.manager.logtail import StreamTail, last_lines
from dataset_worker.manager.segments import SegmentWriter, remove_streams


def test_last_lines() -> None:
    assert last_lines(b"a\nb\nc\n", 2) == b"b\nc\n"
    assert last_lines(b"a\nb\nc", 2) == b"b\nc"
    assert last_lines(b"a\nb\n", 5) == b"a\nb\n"
    assert last_lines(b"a\nb\n", 0) == b""
    assert last_lines(b"", 3) == b""


def test_buffer_follows_new_output_and_stays_bounded(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, "stdout", segment_bytes=1000, keep=10)
    tail = StreamTail("stdout", capacity=100)
    writer.write(b"hello\n")
    chunk = tail.snapshot(tmp_path, run_id=1)
    assert (chunk.start, chunk.end, chunk.data) == (0, 6, b"hello\n")
    writer.write(b"y" * 150)
    chunk = tail.snapshot(tmp_path, run_id=1)
    assert chunk.end == 156
    assert len(chunk.data) == 100
    assert chunk.data == b"y" * 100
    assert chunk.start == 56


def test_a_flood_jumps_to_the_newest_bytes(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, "stdout", segment_bytes=1000, keep=3)
    tail = StreamTail("stdout", capacity=50)
    tail.snapshot(tmp_path, run_id=1)
    for i in range(100):
        writer.write(bytes([65 + i % 26]) * 100)
    chunk = tail.snapshot(tmp_path, run_id=1)
    assert chunk.end == 10_000
    assert chunk.data == bytes([65 + 99 % 26]) * 50


def test_read_from_an_offset_uses_memory_or_disk(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, "stdout", segment_bytes=1000, keep=10)
    writer.write(b"0123456789" * 30)
    tail = StreamTail("stdout", capacity=100)
    from_memory = tail.read_from(tmp_path, 1, offset=250, max_bytes=20)
    assert (from_memory.start, from_memory.data) == (250, b"0123456789" * 2)
    from_disk = tail.read_from(tmp_path, 1, offset=5, max_bytes=10)
    assert (from_disk.start, from_disk.end, from_disk.data) == (5, 15, b"5678901234")
    at_end = tail.read_from(tmp_path, 1, offset=300, max_bytes=10)
    assert (at_end.start, at_end.end, at_end.data) == (300, 300, b"")


def test_a_new_run_starts_a_new_buffer(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, "stdout", segment_bytes=1000, keep=10)
    writer.write(b"first run\n")
    tail = StreamTail("stdout", capacity=100)
    assert tail.snapshot(tmp_path, 1).data == b"first run\n"
    writer.close()
    remove_streams(tmp_path)
    writer = SegmentWriter(tmp_path, "stdout", segment_bytes=1000, keep=10)
    writer.write(b"second\n")
    chunk = tail.snapshot(tmp_path, 2)
    assert (chunk.start, chunk.data) == (0, b"second\n")
