"""`content-provider --verify-blocks`: local CAR files hashed block by block while they are served.

A CAR file edited in place with the same size passes the size check of `LocalCarFile.open`, and
`/piece` would serve it as recorded. With --verify-blocks each read is widened to the blocks it
touches; every block not yet checked in this reply is hashed against the CID framed with it, and
the trailing zero padding is checked to be zeros. A mismatch raises PieceReadError, which cuts the
transfer after the status line (as inline pieces do): the client sees a failed download, never
wrong bytes. Reads leave the zero-copy path (the bytes must pass through the process).

The block layout of a CAR file (its section heads, read by `content/carscan.py`) is kept per
file, size and mtime for the next requests.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from dataset_worker.content.carscan import CarFramingError, iter_sections, read_roots
from dataset_worker.logs import log_event
from dataset_worker.provider.blocks import check_hash
from dataset_worker.provider.response import PieceReadError

log = logging.getLogger(__name__)

_LAYOUTS_KEPT = 256


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each block's data lies in one CAR file, and where the zero padding starts."""

    starts: list[int]  # data offsets, ascending
    ends: list[int]  # exclusive
    cids: list[bytes]
    padding: int  # offset of the first byte after the last section


class _Layouts:
    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[int, int, int, int], _Layout] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, fd: int, size: int, name: str) -> _Layout:
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        layout = _scan(fd, size, name)
        with self._lock:
            self._kept[key] = layout
            while len(self._kept) > _LAYOUTS_KEPT:
                self._kept.popitem(last=False)
        return layout


_layouts = _Layouts()


def _scan(fd: int, size: int, name: str) -> _Layout:
    starts: list[int] = []
    ends: list[int] = []
    cids: list[bytes] = []
    padding = size
    with os.fdopen(os.dup(fd), "rb") as stream:
        try:
            read_roots(stream)
            padding = stream.tell()
            for head in iter_sections(stream, size):
                starts.append(head.data_offset)
                ends.append(head.data_offset + head.data_length)
                cids.append(head.cid)
                padding = ends[-1]
        except (CarFramingError, ValueError) as exc:
            raise PieceReadError(f"the CAR file {name} is not a well-formed CAR: {exc}") from None
    return _Layout(starts, ends, cids, padding)


class VerifyingFileReader:
    """A `PieceReader` over a local CAR file whose blocks are hashed as they are read."""

    def __init__(self, fd: int, size: int, name: str) -> None:
        self._fd = fd
        self._size = size
        self._name = name
        self._layout: _Layout | None = None
        self._checked: set[int] = set()  # blocks already hashed in this reply
        self._padding_checked = False

    @property
    def size(self) -> int:
        """Bytes in the piece."""
        return self._size

    def fileno(self) -> int | None:
        """None: the bytes must pass through the process to be hashed."""
        return None

    def pread(self, offset: int, length: int) -> bytes:
        """The bytes, after hashing every block they touch; PieceReadError on a mismatch."""
        end = min(offset + length, self._size)
        if offset >= end:
            return b""
        if self._layout is None:
            self._layout = _layouts.of(self._fd, self._size, self._name)
        layout = self._layout
        first = max(bisect.bisect_right(layout.ends, offset), 0)
        last = bisect.bisect_left(layout.starts, end)  # blocks first .. last-1 overlap
        todo = [i for i in range(first, last) if i not in self._checked]
        start = min([offset, *(layout.starts[i] for i in todo)])
        stop = max([end, *(layout.ends[i] for i in todo)])
        data = os.pread(self._fd, stop - start, start)
        if len(data) != stop - start:
            raise PieceReadError(f"the CAR file {self._name} ended at {start + len(data)} bytes")
        view = memoryview(data)
        for i in todo:
            block = view[layout.starts[i] - start : layout.ends[i] - start]
            if not check_hash(layout.cids[i], block):
                self._mismatch(layout.starts[i])
            self._checked.add(i)
        if end > layout.padding and not self._padding_checked:
            self._check_padding(layout.padding)
        return bytes(view[offset - start : end - start])

    def _check_padding(self, padding: int) -> None:
        position = padding
        while position < self._size:
            chunk = os.pread(self._fd, min(4 << 20, self._size - position), position)
            if not chunk or chunk.count(0) != len(chunk):
                self._mismatch(position)
            position += len(chunk)
        self._padding_checked = True

    def _mismatch(self, offset: int) -> None:
        log_event(log, "provider.block_mismatch", logging.ERROR, file=self._name, offset=offset)
        raise PieceReadError(
            f"the CAR file {self._name} does not match its blocks at offset {offset}: it was "
            "changed, so the transfer is cut"
        )

    def close(self) -> None:
        """Close the file (safe to call twice)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
