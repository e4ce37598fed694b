"""CARs on remote outputs (S3 buckets, SFTP servers), re-read for verification.

A CAR is streamed from its storage with the same range reader the pack jobs use for sources.
With `--deep`, each CAR is also copied to a private temporary file while it is read, so the
files can be rebuilt from its blocks afterwards without fetching it twice.
"""

from __future__ import annotations

import errno
import io
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, cast

from dataset_worker.storage import OutputStorage, RangeStream, SourceStorage, StorageError
from dataset_worker.storage.select import open_output, open_source
from dataset_worker.verify.car import Opener

BUFFER = 1 << 20


class _RangeReader(io.RawIOBase):
    """A file object over a storage's range stream, optionally copying every byte to `copy`."""

    def __init__(self, stream: RangeStream, copy: BinaryIO | None) -> None:
        super().__init__()
        self._stream = stream
        self._copy = copy

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` with the next bytes of the object; 0 at its end."""
        with memoryview(buffer) as view:
            n = self._stream.readinto(view.cast("B")) or 0
            if self._copy is not None and n:
                self._copy.write(view[:n])
        return n

    def close(self) -> None:
        """Release the stream and finish the copy."""
        if not self.closed:
            try:
                self._stream.close()
            finally:
                if self._copy is not None:
                    self._copy.close()
                super().close()


class RemoteCars:
    """Opens the CARs of non-local outputs; `spool` keeps a local copy of each for --deep."""

    def __init__(self, *, spool: bool) -> None:
        self._spool = spool
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._storages: dict[tuple[str, str], tuple[OutputStorage, SourceStorage]] = {}

    @staticmethod
    def url(root: str, name: str) -> str:
        """Where the CAR lies, for reports."""
        return root.rstrip("/") + "/" + name

    def opener(
        self, kind: str, root: str, config: Mapping[str, Any] | None, name: str, copy_id: int
    ) -> tuple[Opener, Path | None]:
        """An opener for check_piece, and the local copy it fills when spooling."""
        copy_path = self._copy_path(copy_id) if self._spool else None

        def open_car() -> tuple[BinaryIO, int]:
            try:
                output, source = self._open(kind, root, config)
                size = output.exists(name)
                if size is None:
                    raise FileNotFoundError(errno.ENOENT, "the CAR object does not exist")
                stream = source.open_range(name, 0, size=size, mtime_ns=-1)
            except StorageError as exc:  # unreachable storage, refused credentials…
                raise OSError(str(exc)) from exc
            copy = open(copy_path, "wb") if copy_path is not None else None
            return cast(BinaryIO, io.BufferedReader(_RangeReader(stream, copy), BUFFER)), size

        return open_car, copy_path

    def _open(
        self, kind: str, root: str, config: Mapping[str, Any] | None
    ) -> tuple[OutputStorage, SourceStorage]:
        key = (kind, root)
        if key not in self._storages:  # one client per storage, not per CAR
            self._storages[key] = (open_output(kind, root, config), open_source(kind, root, config))
        return self._storages[key]

    def _copy_path(self, copy_id: int) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dw-verify-")
        return Path(self._tmp.name) / f"{copy_id}.car"

    def close(self) -> None:
        """Remove the local copies."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
