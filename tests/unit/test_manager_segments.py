"""Rotating log segments: offsets survive rotation, disk use stays bounded, readers never fail."""

from __future__ import annotations

from pathlib import Path

from dataset_worker.manager.segments import (
    SegmentWriter,
    end_offset,
    list_segments,
    read_range,
    remove_streams,
)


def write_all(tmp_path: Path, chunks: list[bytes], segment_bytes: int = 10, keep: int = 3) -> None:
    writer = SegmentWriter(tmp_path, "stdout", segment_bytes=segment_bytes, keep=keep)
    for chunk in chunks:
        writer.write(chunk)
    writer.close()


def test_offsets_count_every_byte_across_rotations(tmp_path: Path) -> None:
    data = [bytes([65 + i]) * 4 for i in range(10)]  # 40 bytes in 4-byte chunks
    write_all(tmp_path, data, segment_bytes=10, keep=100)
    assert end_offset(tmp_path, "stdout") == 40
    assert [s.base for s in list_segments(tmp_path, "stdout")] == [0, 12, 24, 36]
    assert read_range(tmp_path, "stdout", 0, 100) == (0, b"".join(data))
    assert read_range(tmp_path, "stdout", 10, 6) == (10, b"CCDDDD")


def test_only_the_newest_segments_are_kept(tmp_path: Path) -> None:
    write_all(tmp_path, [b"x" * 10] * 20, segment_bytes=10, keep=3)
    segments = list_segments(tmp_path, "stdout")
    assert len(segments) == 3
    assert sum(s.path.stat().st_size for s in segments) == 30
    assert end_offset(tmp_path, "stdout") == 200


def test_a_read_from_before_the_kept_bytes_starts_at_the_oldest_kept(tmp_path: Path) -> None:
    write_all(tmp_path, [bytes([48 + i]) * 10 for i in range(5)], segment_bytes=10, keep=2)
    first, data = read_range(tmp_path, "stdout", 0, 100)
    assert first == 30
    assert data == b"3" * 10 + b"4" * 10


def test_reading_past_the_end_or_with_no_files_gives_nothing(tmp_path: Path) -> None:
    assert end_offset(tmp_path, "stderr") == 0
    assert read_range(tmp_path, "stderr", 0, 10) == (0, b"")
    write_all(tmp_path, [b"abc"])
    assert read_range(tmp_path, "stdout", 3, 10) == (3, b"")
    assert read_range(tmp_path, "stdout", 99, 10) == (99, b"")


def test_remove_streams_deletes_only_segments(tmp_path: Path) -> None:
    write_all(tmp_path, [b"abc"])
    other = tmp_path / "keep.txt"
    other.write_text("x")
    remove_streams(tmp_path)
    assert list_segments(tmp_path, "stdout") == []
    assert other.exists()


def test_segment_files_are_private(tmp_path: Path) -> None:
    write_all(tmp_path, [b"secret output"])
    mode = list_segments(tmp_path, "stdout")[0].path.stat().st_mode & 0o777
    assert mode == 0o600
