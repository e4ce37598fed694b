"""The server's view of a worker's output: a bounded in-memory ring buffer per stream.

The log pump writes the worker's output to segment files; the server follows them here. Each
refresh reads only what is new, and never more than the buffer's capacity: when a worker floods
its output, the buffer jumps to the newest `capacity` bytes instead of reading everything, so the
server's memory and the time of a `logs?tail=` request stay bounded whatever the worker prints.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from dataset_worker.manager.segments import end_offset, read_range

DEFAULT_CAPACITY = 1024 * 1024


@dataclass(frozen=True)
class LogChunk:
    """Bytes of one stream from `start` (a stream offset) to `end` (exclusive)."""

    start: int
    end: int
    data: bytes


class StreamTail:
    """The last `capacity` bytes of one stream of one run, refreshed from its segment files."""

    def __init__(self, stream: str, capacity: int = DEFAULT_CAPACITY) -> None:
        self.stream = stream
        self.capacity = capacity
        self._lock = threading.Lock()
        self._run: int | None = None
        self._start = 0
        self._buffer = bytearray()

    def snapshot(self, directory: Path, run_id: int) -> LogChunk:
        """Refresh from disk and return the buffered bytes (at most `capacity`)."""
        with self._lock:
            self._refresh(directory, run_id)
            return LogChunk(self._start, self._start + len(self._buffer), bytes(self._buffer))

    def read_from(self, directory: Path, run_id: int, offset: int, max_bytes: int) -> LogChunk:
        """Up to `max_bytes` from stream offset `offset` (from memory when buffered)."""
        with self._lock:
            self._refresh(directory, run_id)
            end = self._start + len(self._buffer)
            if offset >= end:
                return LogChunk(end, end, b"")
            if offset >= self._start:
                begin = offset - self._start
                data = bytes(self._buffer[begin : begin + max_bytes])
                return LogChunk(offset, offset + len(data), data)
        first, data = read_range(directory, self.stream, offset, max_bytes)
        return LogChunk(first, first + len(data), data)

    def _refresh(self, directory: Path, run_id: int) -> None:
        if run_id != self._run:
            self._run, self._start, self._buffer = run_id, 0, bytearray()
        end = end_offset(directory, self.stream)
        current = self._start + len(self._buffer)
        if end < current:  # the files were replaced: start over
            self._start, self._buffer, current = 0, bytearray(), 0
        if end == current:
            return
        wanted = max(current, end - self.capacity)
        first, data = read_range(directory, self.stream, wanted, end - wanted)
        if first != current:  # a jump: older bytes are not worth reading
            self._start, self._buffer = first, bytearray(data)
        else:
            self._buffer += data
        excess = len(self._buffer) - self.capacity
        if excess > 0:
            del self._buffer[:excess]
            self._start += excess


def last_lines(data: bytes, count: int) -> bytes:
    """The last `count` lines of `data` (a final line without newline counts as a line)."""
    if count <= 0:
        return b""
    end = len(data)
    if data.endswith(b"\n"):
        end -= 1
    position = end
    for _ in range(count):
        position = data.rfind(b"\n", 0, position)
        if position < 0:
            return data
    return data[position + 1 :]
