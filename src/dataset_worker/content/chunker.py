"""One byte range of a file → its blocks in Singularity's order (docs/formats.md#chunking-and-leaves).

Leaves first (fixed 1 MiB raw blocks, chunking restarting at the range start), then the range's
parent nodes, level by level, root last. Blocks are produced one at a time from one reused
buffer, so memory stays flat whatever the range size.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from dataset_worker.content.cid import EMPTY_FILE_CID, raw_cid
from dataset_worker.content.unixfs import assemble_file_from_links

CHUNK_SIZE = 1 << 20  # Singularity's ChunkSize
PREFETCH_BUFFERS = 3  # chunks a range may read ahead of its consumer
# The split size for the default max size (docs/formats.md#cutting-files-into-ranges).
DEFAULT_RANGE_SIZE = 1 << 30


_Chunk = tuple[bytes, memoryview]  # (raw CID, data)


class ReadableStream(Protocol):
    """A binary stream that can fill a caller's buffer (files, io.BufferedReader, BytesIO)."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class Digest(Protocol):
    """A running hash fed every byte of the range (hashlib.sha256() fits)."""

    def update(self, data: memoryview, /) -> None: ...


class BlockKind(StrEnum):
    """Raw file-data leaf, or dag-pb parent node."""

    LEAF = "leaf"
    NODE = "node"


@dataclass(slots=True)
class Block:
    """One block of a range. `data` is only valid until the chunker produces the next block."""

    cid: bytes
    data: memoryview
    kind: BlockKind
    file_offset: int | None  # where a leaf starts in its file; None for nodes


class ShortReadError(OSError):
    """The source ended before the end of the range: the file shrank or changed while read."""


class RangeChunker:
    """Iterate once for the blocks of `[offset, offset+length)`; then read `cid` and `length`.

    The stream must already be positioned at `offset`. `length` -1 reads to end of file and
    `length` then reports the bytes actually read. `label` names the source in errors.
    `read_ahead` (default on) reads and hashes up to PREFETCH_BUFFERS chunks ahead in a thread:
    it uses a spare core, but only adds contention when every core is already busy.
    `digest`, when given, is fed every byte read, in order, by whichever thread reads (the
    read-ahead thread, when there is one: the hash then overlaps with the CAR writing).
    """

    def __init__(
        self,
        stream: ReadableStream,
        offset: int,
        length: int,
        *,
        label: str = "",
        buffer: bytearray | None = None,
        chunk_size: int = CHUNK_SIZE,
        read_ahead: bool = True,
        digest: Digest | None = None,
    ) -> None:
        if offset < 0:
            raise ValueError(f"range offset must not be negative, got {offset}")
        if length < -1:
            raise ValueError(f"range length must be -1 (unknown) or >= 0, got {length}")
        if chunk_size <= 0:
            raise ValueError(f"chunk size must be positive, got {chunk_size}")
        self._stream = stream
        self.offset = offset
        self._requested = length
        self.label = label
        self._chunk_size = chunk_size
        self._read_ahead = read_ahead
        self._digest = digest
        self._buffer = buffer if buffer is not None and len(buffer) >= chunk_size else None
        self._cid: bytes | None = None
        self._length: int | None = None
        self._started = False

    @property
    def cid(self) -> bytes:
        """The range's root CID (leaf, parent node, or the empty-file CID)."""
        if self._cid is None:
            raise RuntimeError(f"{self._describe()} has not been fully chunked yet")
        return self._cid

    @property
    def length(self) -> int:
        """The range's measured data length."""
        if self._length is None:
            raise RuntimeError(f"{self._describe()} has not been fully chunked yet")
        return self._length

    def __iter__(self) -> Generator[Block, None, None]:
        if self._started:
            raise RuntimeError(f"{self._describe()} can only be chunked once")
        self._started = True
        return self._blocks()

    def _blocks(self) -> Generator[Block, None, None]:
        links: list[tuple[bytes, int]] = []
        position = self.offset
        with self._hashed_chunks() as chunks:
            for cid, data in chunks:
                links.append((cid, len(data)))
                yield Block(cid, data, BlockKind.LEAF, position)
                position += len(data)
        self._length = position - self.offset
        if not links:
            yield Block(EMPTY_FILE_CID, memoryview(b""), BlockKind.LEAF, self.offset)
            self._cid = EMPTY_FILE_CID
            return
        dag = assemble_file_from_links(links)
        for cid, block in dag.nodes:
            yield Block(cid, memoryview(block), BlockKind.NODE, None)
        self._cid = dag.root_cid

    def _hashed_chunks(self) -> contextlib.AbstractContextManager[Iterator[_Chunk]]:
        """(CID, data) of each chunk; read ahead in a thread when the range has several and
        read-ahead is on. Without it, every chunk reuses one buffer."""
        first = memoryview(
            self._buffer if self._buffer is not None else bytearray(self._chunk_size)
        )
        if not self._read_ahead or 0 <= self._requested <= self._chunk_size:
            return contextlib.nullcontext(self._read_chunks(lambda: first))
        return _prefetched(self._read_chunks, first, self._chunk_size)

    def _read_chunks(self, take_buffer: Callable[[], memoryview]) -> Iterator[_Chunk]:
        """Read the range chunk by chunk, each into a buffer from `take_buffer`, and hash it."""
        position = self.offset
        remaining = None if self._requested == -1 else self._requested
        while remaining != 0:
            want = self._chunk_size if remaining is None else min(self._chunk_size, remaining)
            view = take_buffer()
            got = _read_full(self._stream, view[:want])
            if got < want and remaining is not None:
                raise ShortReadError(
                    f"{self._describe()}: the source ended at offset {position + got}, "
                    f"{remaining - got} bytes early (the file shrank or changed while read)"
                )
            if got == 0:
                return
            data = view[:got]
            if self._digest is not None:
                self._digest.update(data)
            yield raw_cid(data), data
            position += got
            if remaining is not None:
                remaining -= got
            elif got < want:
                return

    def _describe(self) -> str:
        end = "EOF" if self._requested == -1 else str(self.offset + self._requested)
        where = f" of {self.label}" if self.label else ""
        return f"range [{self.offset}, {end}){where}"


def _read_full(stream: ReadableStream, view: memoryview) -> int:
    """Fill `view` like Go's io.ReadFull; return fewer bytes only at end of stream."""
    total = 0
    size = len(view)
    while total < size:
        got = stream.readinto(view[total:])
        if not got:
            break
        total += got
    return total


class _Stopped(Exception):
    """Raised inside the read-ahead thread when the consumer has gone away."""


@contextlib.contextmanager
def _prefetched(
    read_chunks: Callable[[Callable[[], memoryview]], Iterator[_Chunk]],
    first: memoryview,
    chunk_size: int,
) -> Iterator[Iterator[_Chunk]]:
    """Run `read_chunks` in a thread, up to PREFETCH_BUFFERS chunks ahead of the consumer.

    Reading and hashing (both release the GIL) then overlap with whatever the consumer does with
    the previous chunk, typically writing it to the CAR. A chunk's buffer goes back to the
    reader when the consumer asks for the next chunk, so each view stays valid until then.
    """
    free: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
    ready: queue.SimpleQueue[tuple[_Chunk, memoryview] | BaseException | None] = queue.SimpleQueue()
    free.put(first)
    for _ in range(PREFETCH_BUFFERS - 1):
        free.put(memoryview(bytearray(chunk_size)))

    def take_buffer() -> memoryview:
        view = free.get()
        if view is None:
            raise _Stopped
        return view

    def produce() -> None:
        try:
            for chunk in read_chunks(take_buffer):
                ready.put((chunk, memoryview(chunk[1].obj)))
            ready.put(None)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)

    def consume() -> Iterator[_Chunk]:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            chunk, buffer = item
            yield chunk
            free.put(buffer)

    thread = threading.Thread(target=produce, name="chunk-read-ahead", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        free.put(None)  # wakes the reader if it waits for a buffer; it stops there
        thread.join()


def stream_file_cid(
    stream: ReadableStream,
    size: int,
    *,
    range_size: int = DEFAULT_RANGE_SIZE,
    label: str = "",
    on_progress: Callable[[int], object] | None = None,
) -> bytes:
    """The Singularity CID of a whole file of `size` bytes read from the start of `stream`.

    The file is cut into ranges of `range_size` (the last one shorter; a 0-byte file is one
    empty range). One range → its root; several → a File DAG over (range CID, range length).
    `on_progress` gets the byte count of every leaf as it is hashed.
    """
    if size < 0:
        raise ValueError(f"file size must not be negative, got {size}")
    if range_size <= 0:
        raise ValueError(f"range size must be positive, got {range_size}")
    buffer = bytearray(CHUNK_SIZE)
    links: list[tuple[bytes, int]] = []
    offset = 0
    while True:
        length = min(range_size, size - offset)
        chunker = RangeChunker(stream, offset, length, label=label, buffer=buffer)
        for block in chunker:
            if on_progress is not None and block.kind is BlockKind.LEAF:
                on_progress(len(block.data))
        links.append((chunker.cid, chunker.length))
        offset += length
        if offset >= size:
            break
    return assemble_file_from_links(links).root_cid
