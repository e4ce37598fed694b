"""A generated source for the scale benchmark: listings and bytes without a filesystem.

Ten million small files take about 40 GB of disk and an hour to write; this source yields the
same shape of tree from arithmetic instead, behind the product's own storage protocol
(`SourceStorage`, `ResumableSource`, `SmallRangeReader` in `dataset_worker.storage.base`), so
the real scan, pack and daggen jobs run on it unchanged. `folders` folders `d00000`… hold the
files `f0000000.bin`… round-robin (as `bench/smallfiles.py`'s cached trees do); a file's size
(0-2048 bytes) and bytes are a function of its index and the seed, so a re-read gives the same
bytes and every file's content is distinct (its index is in its first bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

from dataset_worker.storage.base import (
    ListingErrorHandler,
    SmallRange,
    SourceChangedError,
    SourceEntry,
    WalkStart,
)

MTIME_NS = 1_764_892_800 * 1_000_000_000  # every file's modification time
MAX_SIZE = 2048
_POOL_BYTES = 1 << 16


class GeneratedSource:
    """`files` files of 0-2 KiB in `folders` folders, made up on demand."""

    def __init__(self, files: int, folders: int, seed: int) -> None:
        self.files = files
        self.folders = folders
        self.seed = seed
        pool = bytearray()
        counter = 0
        while len(pool) < _POOL_BYTES + MAX_SIZE:
            pool += hashlib.sha256(b"%d/%d" % (seed, counter)).digest()
            counter += 1
        self._pool = bytes(pool)

    def size_of(self, index: int) -> int:
        """The size of file `index` (a multiplicative hash: spread evenly over 0..2048)."""
        return ((index * 2_654_435_761 + self.seed * 97) >> 7) % (MAX_SIZE + 1)

    def content_of(self, index: int) -> bytes:
        """The bytes of file `index`: its index, then a slice of the seeded pool."""
        size = self.size_of(index)
        head = index.to_bytes(8, "little")[:size]
        start = (index * 40_503) % _POOL_BYTES
        return head + self._pool[start : start + size - len(head)]

    def walk(self, on_error: ListingErrorHandler) -> Iterator[SourceEntry]:
        """Breadth first, each folder's entries in byte order, as `LocalSource.walk`."""
        return self.walk_from(on_error, WalkStart(pending=("",), after=""))

    def walk_from(self, on_error: ListingErrorHandler, start: WalkStart) -> Iterator[SourceEntry]:
        """The walk from `start` (resumable, like an S3 listing)."""
        pending = list(start.pending)
        after = start.after
        while pending:
            directory = pending.pop(0)
            if directory == "":
                for folder in range(self.folders):
                    name = f"d{folder:05d}"
                    pending.append(name)
                    if name > after:
                        yield SourceEntry(name, True)
            else:
                folder = int(directory[1:])
                for index in range(folder, self.files, self.folders):
                    name = f"f{index:07d}.bin"
                    if name > after:
                        yield SourceEntry(
                            f"{directory}/{name}", False, self.size_of(index), MTIME_NS
                        )
            after = ""

    def open_range(
        self, path: str, offset: int, *, size: int, mtime_ns: int, hash: str = ""
    ) -> _Bytes:
        """The file's bytes from `offset` as a stream."""
        return _Bytes(self.read_range(path, offset, MAX_SIZE, size=size, mtime_ns=mtime_ns))

    def read_range(
        self, path: str, offset: int, length: int, *, size: int, mtime_ns: int, hash: str = ""
    ) -> bytes:
        """`length` bytes of the file at `offset`, after the size check of a real source."""
        index = int(path.rsplit("/f", 1)[1].removesuffix(".bin"))
        content = self.content_of(index)
        if size not in (-1, len(content)):
            raise SourceChangedError(f"{path}: size {len(content)}, recorded {size}")
        return content[offset : offset + length]

    def read_ranges(self, ranges: Sequence[SmallRange]) -> tuple[bytes, list[int]]:
        """Many small ranges in one call, as a local folder reads them (SmallRangeReader)."""
        parts = [
            self.read_range(r.path, r.offset, r.length, size=r.size, mtime_ns=r.mtime_ns)
            for r in ranges
        ]
        return b"".join(parts), [len(part) for part in parts]

    def remove(self, path: str) -> None:
        """Nothing to delete: the bytes are made up."""

    def describe(self) -> str:
        """Names the generated tree in messages."""
        return f"generated tree of {self.files:,} files in {self.folders:,} folders"


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def readinto(self, buffer: memoryview, /) -> int:
        chunk = self._data[self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def close(self) -> None:
        pass
