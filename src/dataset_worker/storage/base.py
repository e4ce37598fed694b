"""The storage interface: what scan, pack and daggen need from a source and an output storage.

A source is listed and read by byte range; an output receives CAR files through a temporary
object that only gets its final name when it is complete. Local folders (`storage.local`),
S3-compatible buckets (`storage.s3`) and SFTP servers (`storage.sftp`) implement both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple, Protocol, runtime_checkable


class StorageError(Exception):
    """A storage cannot be used: unsupported type, missing folder, no space left."""


class ListingFailed(StorageError):
    """Listing a source failed part-way. The message says what a scan does about it; `brief`
    says only what failed, for a storage check (which scans nothing)."""

    def __init__(self, brief: str, consequence: str) -> None:
        super().__init__(f"{brief}; {consequence}")
        self.brief = brief


class SourceChangedError(StorageError):
    """A source file differs from what the scan recorded (size, mtime or version tag)."""


# What every "source changed" message ends with: the way out (docs/operations.md#sources-that-change).
RESCAN_HINT = (
    "rescan the preparation (prep rescan NAME) to re-plan its work around the current files"
)


def iso_time(mtime_ns: int, *, whole_seconds: bool = False) -> str:
    """A modification time in nanoseconds as ISO 8601 UTC: `2026-12-05T14:37:41.123456789Z`."""
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if whole_seconds or not nanos:
        return f"{stamp}Z"
    return f"{stamp}.{nanos:09d}Z"


class SourceEntry(NamedTuple):
    """One listed object. `path` is relative to the storage root and `/`-separated.

    For a directory, `size` and `mtime_ns` are 0. `mtime_ns` is the modification time in
    nanoseconds since the epoch (files.last_modified_nano). `hash` is the storage's version tag
    of the object (files.hash: an S3 ETag; empty for local files).
    """

    path: str
    is_dir: bool
    size: int = 0
    mtime_ns: int = 0
    hash: str = ""


ListingErrorHandler = Callable[[str, Exception], None]


@dataclass(frozen=True, slots=True)
class WalkStart:
    """Where a breadth-first walk resumes: the directories still to list, in walk order (the
    first one partly listed), and the name in that first directory after which to continue
    (every child whose name sorts at or before it was already recorded)."""

    pending: tuple[str, ...]
    after: str


@runtime_checkable
class ResumableSource(Protocol):
    """A source whose walk can resume at a `WalkStart` (S3: the listing restarts there)."""

    def walk_from(self, on_error: ListingErrorHandler, start: WalkStart) -> Iterator[SourceEntry]:
        """`walk`, from `start` on; entries at or before `start` are not listed again."""
        ...


class RangeStream(Protocol):
    """An open byte range: `readinto` fills buffers from the range start; `close` releases it."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...

    def close(self) -> None: ...


class SourceStorage(Protocol):
    """Where files are read from."""

    def walk(self, on_error: ListingErrorHandler) -> Iterator[SourceEntry]:
        """Every directory and file below the root, breadth first, each directory's entries in
        byte order of their path. Directories that cannot be listed are reported to `on_error`
        (path, error) and skipped."""
        ...

    def open_range(
        self, path: str, offset: int, *, size: int, mtime_ns: int, hash: str = ""
    ) -> RangeStream:
        """Open `path` positioned at `offset`, after checking that it still has the recorded
        `size` (unless -1), `mtime_ns` (unless -1) and `hash` (when both sides have one); raises
        SourceChangedError naming the file if not."""
        ...

    def remove(self, path: str) -> None:
        """Delete a source file (delete-after-export)."""
        ...

    def describe(self) -> str:
        """A short human name for messages, e.g. the folder path."""
        ...


class SmallRange(NamedTuple):
    """A range of a file to read whole in one call, with what the scan recorded of the file
    (`size` and `mtime_ns` -1 when not to be checked)."""

    path: str
    offset: int
    length: int
    size: int
    mtime_ns: int


@runtime_checkable
class SmallRangeReader(Protocol):
    """A source that reads many small ranges in one call (local folders): no stream object per
    file, which is most of the cost of packing many tiny files."""

    def read_ranges(self, ranges: Sequence[SmallRange]) -> tuple[bytes, list[int]]:
        """Every range's bytes one after the other, and how many were read of each: all of its
        `length`, fewer only when the file ends early (the caller reports that). Each file is
        checked as `open_range` checks it; the first that fails raises its error."""
        ...


@dataclass(frozen=True, slots=True)
class SpaceInfo:
    """Free and total bytes of an output storage (None when the backend cannot tell)."""

    free: int | None
    total: int | None


class TempOutput(Protocol):
    """A CAR being written. Dropped unless `publish` succeeds; `discard` is always safe to call."""

    @property
    def stream(self) -> BinaryIO:
        """The writable binary stream."""
        ...

    @property
    def size(self) -> int:
        """Bytes in the object so far (after `pad_to`, the padded size)."""
        ...

    def read_back(self) -> BinaryIO:
        """A fresh reader over what was written (flushed first), for padding and verification."""
        ...

    def pad_to(self, size: int) -> None:
        """Append zero bytes until the object is `size` bytes long."""
        ...

    def publish(self, name: str) -> str:
        """Make the object durable and visible as `name` (replacing any object of that name);
        returns the storage path recorded in cars.storage_path."""
        ...

    def discard(self) -> None:
        """Remove the temporary object (and never a published one)."""
        ...


class OutputStorage(Protocol):
    """Where CAR files are written."""

    def space(self) -> SpaceInfo:
        """Free and total space."""
        ...

    def create_temp(self, tag: str) -> TempOutput:
        """A new temporary object whose name starts with a prefix derived from `tag`."""
        ...

    def remove_temps(self, tag: str) -> int:
        """Remove leftover temporary objects of `tag` (from a crashed run); returns how many."""
        ...

    def exists(self, path: str) -> int | None:
        """Size of the object at `path`, or None if there is none."""
        ...

    def remove(self, path: str) -> None:
        """Delete the object at `path` if it exists."""
        ...

    def describe(self) -> str:
        """A short human name for messages."""
        ...
