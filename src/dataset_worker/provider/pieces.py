"""From a piece CID to bytes that can be served: the `cars` rows, then a `PieceSource`.

A `PieceSource` is where one piece's bytes come from: `LocalCarFile` (the CAR file a pack or
daggen job wrote to a local output folder), `RemoteCarFile` (`remote.py`: one in an S3 bucket or
on an SFTP server) or `InlinePiece` (`inline.py`: an inline preparation's piece rebuilt from the
source files and `car_blocks`), chosen in `PieceCatalog.source_of`. Opening a source checks the bytes are the ones recorded (the file
exists with the recorded size) so a broken output is reported, never served.

Read-only: this module only ever reads the database.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.models import Car, Storage

# Storage types whose CAR objects are read over the network (`remote.py`, loaded on first use).
REMOTE_STORAGE_TYPES = ("s3", "sftp")


class PieceNotFound(LookupError):
    """No `cars` row has this piece CID (404)."""


class PieceUnavailable(Exception):
    """A piece is known but its bytes cannot be served as recorded.

    `status` is 410 when the CAR file is gone, 409 when it exists but differs from the record
    (size, type) or cannot be read, 501 for a kind of source not served yet. `file` names it.
    """

    def __init__(self, status: int, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.file = file


@dataclass(frozen=True, slots=True)
class PieceRecord:
    """The `cars` row of a piece, with the storage that holds its CAR file."""

    car_id: int
    piece_cid: bytes
    piece_type: str
    piece_size: int
    root_cid: bytes
    file_size: int
    storage_path: str
    created_at: datetime
    num_of_files: int
    preparation_id: int | None
    job_id: int | None
    storage_type: str | None
    storage_root: str | None
    storage_config: dict[str, Any] | None = None


class PieceReader(Protocol):
    """An open piece: positional reads, and a file descriptor when zero-copy sends can use it."""

    @property
    def size(self) -> int:
        """Bytes in the piece (the CAR file, padding included)."""
        ...

    def fileno(self) -> int | None:
        """An OS file descriptor over exactly the piece's bytes, or None."""
        ...

    def pread(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer only if the source shrank meanwhile)."""
        ...

    def close(self) -> None:
        """Release the source."""
        ...


@runtime_checkable
class CheckedPieceReader(PieceReader, Protocol):
    """A reader whose bytes depend on more than one file (an inline piece, rebuilt from its
    source files): what the requested spans need is checked before the reply starts."""

    def check_spans(self, spans: Sequence[tuple[int, int]]) -> None:
        """PieceUnavailable if the (offset, length) spans cannot be served as recorded."""
        ...


class PieceSource(Protocol):
    """Where one piece's bytes come from."""

    def describe(self) -> str:
        """A short name for messages (the file path)."""
        ...

    def open(self) -> PieceReader:
        """Open the bytes after checking they are the recorded ones; PieceUnavailable if not."""
        ...


class LocalFileReader:
    """A `PieceReader` over an open local file."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size

    @property
    def size(self) -> int:
        """Bytes in the piece."""
        return self._size

    def fileno(self) -> int | None:
        """The file's descriptor (for sendfile)."""
        return self._fd

    def pread(self, offset: int, length: int) -> bytes:
        """Bytes from the file."""
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        """Close the file (safe to call twice)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True, slots=True)
class LocalCarFile:
    """A CAR file in a local output folder, expected to be exactly `size` bytes."""

    path: Path
    size: int
    name: str = ""  # the CAR's name in its output storage: what replies show, not the path
    verify: bool = False  # hash every block while serving (content-provider --verify-blocks)

    def describe(self) -> str:
        """The file path."""
        return str(self.path)

    def open(self) -> PieceReader:
        """Open the file; 410 if it is gone, 409 if it is not the recorded regular file.

        Errors name the CAR file as recorded in its storage, never the server's folders."""
        name = self.name or self.path.name
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PieceUnavailable(410, f"the CAR file {name} no longer exists", name) from None
        except OSError as exc:
            message = f"the CAR file {name} cannot be read: {exc.strerror or exc}"
            raise PieceUnavailable(409, message, name) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise PieceUnavailable(409, f"the CAR file {name} is not a regular file", name)
            if info.st_size != self.size:
                raise PieceUnavailable(
                    409,
                    f"the CAR file {name} is {info.st_size} bytes but the database records "
                    f"{self.size}: it was truncated or replaced, so it is not served",
                    name,
                )
        except BaseException:
            os.close(fd)
            raise
        if self.verify:
            from dataset_worker.provider.verified import VerifyingFileReader  # imports response

            return VerifyingFileReader(fd, self.size, name)
        return LocalFileReader(fd, self.size)


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _safe_relative(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and "\x00" not in path and ".." not in parts


RECORDS_TTL_SECONDS = 5.0
RECORDS_KEPT = 10_000


class PieceCatalog:
    """Looks pieces up in the database and picks the source of their bytes.

    Found rows are remembered for RECORDS_TTL_SECONDS: a storage provider fetching a piece sends
    many range requests for it, and the lookup would otherwise be most of each request's cost.
    A piece not found is asked for again every time (it may be packed at any moment).
    """

    def __init__(self, db: Database, *, verify_blocks: bool = False) -> None:
        self.db = db
        self.verify_blocks = verify_blocks  # local CAR files hashed block by block when served
        self._cache: OrderedDict[bytes, tuple[float, list[PieceRecord]]] = OrderedDict()
        self._lock = threading.Lock()

    def cached_records(self, piece_cid: bytes) -> list[PieceRecord] | None:
        """The remembered rows of a piece, or None when they must be read."""
        with self._lock:
            entry = self._cache.get(piece_cid)
            if entry is None or time.monotonic() - entry[0] > RECORDS_TTL_SECONDS:
                return None
            return entry[1]

    def records(self, piece_cid: bytes) -> list[PieceRecord]:
        """Every `cars` row with this piece CID, oldest first (the same bytes may be recorded
        by several preparations)."""
        cached = self.cached_records(piece_cid)
        if cached is not None:
            return cached
        found = self._read_records(piece_cid)
        if found:
            with self._lock:
                self._cache[piece_cid] = (time.monotonic(), found)
                self._cache.move_to_end(piece_cid)
                while len(self._cache) > RECORDS_KEPT:
                    self._cache.popitem(last=False)
        return found

    def _read_records(self, piece_cid: bytes) -> list[PieceRecord]:
        query = (
            select(Car, Storage.type, Storage.path, Storage.config)
            .outerjoin(Storage, Storage.id == Car.storage_id)
            .where(Car.piece_cid == piece_cid)
            .order_by(Car.id)
        )
        with self.db.read() as session:
            rows = session.execute(query).all()
        return [
            PieceRecord(
                car_id=car.id,
                piece_cid=car.piece_cid,
                piece_type=str(car.piece_type),
                piece_size=car.piece_size,
                root_cid=car.root_cid,
                file_size=car.file_size,
                storage_path=car.storage_path,
                created_at=_aware(car.created_at),
                num_of_files=car.num_of_files,
                preparation_id=car.preparation_id,
                job_id=car.job_id,
                storage_type=storage_type,
                storage_root=storage_root,
                storage_config=dict(storage_config or {}),
            )
            for car, storage_type, storage_root, storage_config in rows
        ]

    def source_of(self, record: PieceRecord) -> PieceSource:
        """The source of a row's bytes; PieceUnavailable when there is none to serve from."""
        if record.storage_type is None and not record.storage_path:
            from dataset_worker.provider.inline import InlinePiece  # it imports this module

            return InlinePiece(self.db, record)
        if record.storage_type is None or record.storage_root is None:
            raise PieceUnavailable(
                410, "the output storage that held this piece's CAR file was removed"
            )
        if not _safe_relative(record.storage_path):
            raise PieceUnavailable(
                409, f"the recorded CAR path {record.storage_path!r} is not a relative file name"
            )
        if record.storage_type in REMOTE_STORAGE_TYPES:
            from dataset_worker.provider.remote import RemoteCarFile  # boto3/paramiko on demand

            return RemoteCarFile(record)
        if record.storage_type != "local":
            raise PieceUnavailable(
                501, f"pieces in {record.storage_type!r} storages are not served yet"
            )
        path = Path(record.storage_root) / record.storage_path
        return LocalCarFile(path, record.file_size, record.storage_path, self.verify_blocks)

    def open(self, piece_cid: bytes) -> tuple[PieceRecord, PieceReader]:
        """The first row of the piece whose bytes can be served, opened.

        PieceNotFound if no row has the CID; else the first row's PieceUnavailable when none of
        them can be served.
        """
        return self.open_records(self.records(piece_cid))

    def open_records(self, records: list[PieceRecord]) -> tuple[PieceRecord, PieceReader]:
        """`open` for rows already looked up."""
        if not records:
            raise PieceNotFound("no piece with this CID is known here")
        first_error: PieceUnavailable | None = None
        for record in records:
            try:
                return record, self.source_of(record).open()
            except PieceUnavailable as exc:
                first_error = first_error or exc
        assert first_error is not None
        raise first_error
