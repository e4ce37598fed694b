"""Pieces whose CAR file is in an S3 bucket or on an SFTP server, served by ranged reads.

Before any byte is sent, the object is looked up once (an S3 HEAD, an SFTP stat): 410 naming it
when it is gone, 409 when its size is not the recorded one or it cannot be looked up. The bytes
are then streamed with the storage's own range reads (`open_range` of `storage.s3` or
`storage.sftp`): a reset or timeout reopens the read at the current offset, and the size is
checked again at every (re)open, so a replaced object aborts the transfer instead of sending
other bytes. Credentials come from the storage's usual places (the AWS chain, SSH keys).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from dataset_worker.logs import log_event
from dataset_worker.provider.pieces import PieceRecord, PieceUnavailable
from dataset_worker.storage import (
    OutputStorage,
    RangeStream,
    SourceStorage,
    StorageError,
    open_output,
    open_source,
)

log = logging.getLogger(__name__)

READ_BUFFER = 1 << 20  # bytes copied from the stream per readinto call


def object_name(record: PieceRecord) -> str:
    """`s3://bucket/prefix/name.car` or `sftp://host/path/name.car`, for messages."""
    root = (record.storage_root or "").rstrip("/")
    return f"{root}/{record.storage_path}"


class RemoteCarReader:
    """A `CheckedPieceReader` over a CAR object: `check_spans` looks it up, `pread` streams it.

    Opening does no I/O (the fast path may open it in the event loop). Sequential reads (a
    download) continue on the open stream; a read at any other offset reopens it there. Not
    thread-safe: one reader serves one transfer.
    """

    def __init__(self, record: PieceRecord) -> None:
        self._record = record
        self._name = object_name(record)
        self._stream: RangeStream | None = None
        self._position = -1
        self._checked = False

    @property
    def size(self) -> int:
        """Bytes in the piece (the CAR object, padding included)."""
        return self._record.file_size

    def fileno(self) -> int | None:
        """None: the bytes are not in a local file (no zero-copy send)."""
        return None

    def _output(self) -> OutputStorage:
        record = self._record
        assert record.storage_type is not None and record.storage_root is not None
        try:
            return open_output(record.storage_type, record.storage_root, record.storage_config)
        except StorageError as exc:
            message = f"the storage holding the CAR object {self._name} cannot be opened: {exc}"
            raise PieceUnavailable(409, message, self._name) from None

    def _source(self) -> SourceStorage:
        record = self._record
        assert record.storage_type is not None and record.storage_root is not None
        return open_source(record.storage_type, record.storage_root, record.storage_config)

    def check_spans(self, spans: Sequence[tuple[int, int]]) -> None:
        """Look the object up once: 410 if it is gone, 409 if its size differs or the lookup
        fails; every span needs the same single object."""
        if self._checked:
            return
        name = self._name
        try:
            found = self._output().exists(self._record.storage_path)
        except PieceUnavailable:
            raise
        except Exception as exc:  # boto3, paramiko and socket errors alike: not servable now
            message = f"the CAR object {name} cannot be looked up: {exc}"
            raise PieceUnavailable(409, message, name) from None
        if found is None:
            raise PieceUnavailable(410, f"the CAR object {name} no longer exists", name)
        if found != self.size:
            raise PieceUnavailable(
                409,
                f"the CAR object {name} is {found} bytes but the database records {self.size}: "
                "it was truncated or replaced, so it is not served",
                name,
            )
        self._checked = True

    def pread(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset`; raises (aborting the transfer) if the object
        changed or cannot be read any more."""
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        try:
            return self._read(offset, end - offset)
        except Exception as exc:
            self.close()  # the next read starts again rather than at a broken state
            log_event(
                log,
                "provider.remote_read_failed",
                logging.ERROR,
                car=self._record.car_id,
                offset=offset,
                file=self._name,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise

    def _read(self, offset: int, length: int) -> bytes:
        if self._stream is None or offset != self._position:
            self.close()
            # mtime -1: a CAR object's time is not recorded; its size is checked at every open.
            self._stream = self._source().open_range(
                self._record.storage_path, offset, size=self.size, mtime_ns=-1
            )
            self._position = offset
        out = bytearray(length)
        view = memoryview(out)
        filled = 0
        while filled < length:
            got = self._stream.readinto(view[filled : filled + min(READ_BUFFER, length - filled)])
            if not got:
                raise StorageError(
                    f"the CAR object {self._name} ended at byte {self._position + filled}, "
                    f"before its recorded size {self.size}"
                )
            filled += got
        self._position += filled
        return bytes(out)

    def close(self) -> None:
        """Close the open stream, if any (safe to call twice)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._position = -1


@dataclass(frozen=True, slots=True)
class RemoteCarFile:
    """A CAR object in an S3 bucket or on an SFTP server, expected to be `file_size` bytes."""

    record: PieceRecord

    def describe(self) -> str:
        """The object's URL."""
        return object_name(self.record)

    def open(self) -> RemoteCarReader:
        """A reader over the object (looked up on the first check, not here)."""
        return RemoteCarReader(self.record)
