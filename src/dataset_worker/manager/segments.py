"""Size-bounded rotating log files with byte-offset addressing (supervisord-style tailing).

A stream (stdout or stderr of one worker run) is stored as segment files named after the offset
of their first byte: `stdout.00000000000000000000.log`, `stdout.00000000000008388608.log`, …
A new segment starts once the current one reaches `segment_bytes`, and only the newest `keep`
segments are kept, so the disk use of a stream is bounded by about `segment_bytes * keep`.
Because names carry offsets, a reader can serve "everything after byte N" exactly even while
the writer rotates: offsets count every byte the stream ever produced in this run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

STREAMS = ("stdout", "stderr")
_NAME = re.compile(r"^(stdout|stderr)\.(\d{20})\.log$")
_READ_ATTEMPTS = 5


@dataclass(frozen=True)
class Segment:
    """One file of a stream and the stream offset of its first byte."""

    base: int
    path: Path


def segment_path(directory: Path, stream: str, base: int) -> Path:
    """The file that holds the bytes of `stream` from offset `base` on."""
    return directory / f"{stream}.{base:020d}.log"


def list_segments(directory: Path, stream: str) -> list[Segment]:
    """The segments of `stream` present now, oldest first."""
    found: list[Segment] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = _NAME.match(entry.name)
        if match and match.group(1) == stream:
            found.append(Segment(int(match.group(2)), Path(entry.path)))
    return sorted(found, key=lambda s: s.base)


def remove_streams(directory: Path) -> None:
    """Delete every segment of every stream (a new run starts its logs at offset 0)."""
    for stream in STREAMS:
        for segment in list_segments(directory, stream):
            segment.path.unlink(missing_ok=True)


class SegmentWriter:
    """Appends the bytes of one stream to rotating segment files."""

    def __init__(self, directory: Path, stream: str, *, segment_bytes: int, keep: int) -> None:
        if segment_bytes <= 0 or keep <= 0:
            raise ValueError("segment_bytes and keep must be positive")
        self._directory = directory
        self._stream = stream
        self._segment_bytes = segment_bytes
        self._keep = keep
        self._offset = 0
        self._segment_size = 0
        self._fd = self._open(0)

    @property
    def offset(self) -> int:
        """Bytes written to this stream so far."""
        return self._offset

    def write(self, data: bytes) -> None:
        """Append `data`, starting a new segment first when the current one is full."""
        if self._segment_size >= self._segment_bytes:
            self._rotate()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._offset += written
            self._segment_size += written

    def close(self) -> None:
        """Close the current segment file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _open(self, base: int) -> int:
        path = segment_path(self._directory, self._stream, base)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = self._open(self._offset)
        self._segment_size = 0
        for old in list_segments(self._directory, self._stream)[: -self._keep]:
            old.path.unlink(missing_ok=True)


def end_offset(directory: Path, stream: str) -> int:
    """Offset just past the last byte written so far (0 when the stream has no file)."""
    for _ in range(_READ_ATTEMPTS):
        segments = list_segments(directory, stream)
        if not segments:
            return 0
        last = segments[-1]
        try:
            return last.base + last.path.stat().st_size
        except FileNotFoundError:
            continue  # rotated away between listing and stat: list again
    return 0


def read_range(directory: Path, stream: str, start: int, max_bytes: int) -> tuple[int, bytes]:
    """Read up to `max_bytes` of `stream` from offset `start`.

    Returns (first offset returned, bytes). The first offset is later than `start` when those
    bytes were already rotated away; the reply then begins at the oldest byte still kept.
    """
    for _ in range(_READ_ATTEMPTS):
        try:
            return _read_range_once(list_segments(directory, stream), start, max_bytes)
        except FileNotFoundError:
            continue  # a segment was deleted by rotation while reading: try again
    return start, b""


def _read_range_once(segments: list[Segment], start: int, max_bytes: int) -> tuple[int, bytes]:
    if not segments or max_bytes <= 0:
        return start, b""
    position = max(start, segments[0].base)
    chunks: list[bytes] = []
    remaining = max_bytes
    for index, segment in enumerate(segments):
        following = segments[index + 1].base if index + 1 < len(segments) else None
        if following is not None and following <= position:
            continue
        with open(segment.path, "rb") as handle:
            handle.seek(position - segment.base)
            data = handle.read(remaining)
        chunks.append(data)
        position += len(data)
        remaining -= len(data)
        # Stop when full, or when this segment ended short of the next one's base (a gap
        # should not happen, but then the next read starts at the next segment).
        if remaining == 0 or following is None:
            break
        if position < following:
            break
    first = max(start, segments[0].base)
    return first, b"".join(chunks)
