"""Inline pieces served by the content provider: the CAR rebuilt from `car_blocks` and the source.

An inline preparation wrote no CAR file (its `cars` row has no storage and an empty path). Its
bytes are rebuilt by `dataset_worker.pieces.inline`. Before any byte is sent, the source files
the requested spans need are checked against the scan (`check_spans`: 409 naming the file);
while streaming, every leaf is hashed against its CID, and a mismatch raises, which aborts the
transfer after the status line: the client sees a failed download, never wrong bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from dataset_worker.db import Database
from dataset_worker.logs import log_event
from dataset_worker.pieces.inline import (
    InlineCar,
    InlinePieceError,
    InlinePieceReader,
    SourceBytesMismatch,
    source_of_car,
)
from dataset_worker.provider.pieces import PieceRecord, PieceUnavailable

log = logging.getLogger(__name__)


class InlineReader:
    """A `PieceReader` over a rebuilt inline piece; `check_spans` runs before the reply.

    Opening does no I/O (the fast path may open it in the event loop); the source storage is
    looked up on the first check or read, which run in a worker thread.
    """

    def __init__(self, db: Database, record: PieceRecord) -> None:
        self._db = db
        self._record = record
        self._car_id = record.car_id
        self._reader: InlinePieceReader | None = None

    @property
    def size(self) -> int:
        """Bytes in the piece, padding included."""
        return self._record.file_size

    def _rebuilder(self) -> InlinePieceReader:
        if self._reader is None:
            try:
                source = source_of_car(self._db, self._car_id)
            except InlinePieceError as exc:
                raise PieceUnavailable(410, str(exc)) from None
            record = self._record
            car = InlineCar(record.car_id, record.root_cid, record.piece_size, record.file_size)
            self._reader = InlinePieceReader(self._db, car, source)
        return self._reader

    def fileno(self) -> int | None:
        """None: there is no file holding the bytes (no zero-copy send)."""
        return None

    def check_spans(self, spans: Sequence[tuple[int, int]]) -> None:
        """Check the source files the (offset, length) spans need; 409 naming the first changed
        one, before any byte is sent."""
        try:
            self._rebuilder().check(spans)
        except InlinePieceError as exc:
            raise PieceUnavailable(409, str(exc), exc.file) from None

    def pread(self, offset: int, length: int) -> bytes:
        """Rebuilt bytes; raises (aborting the transfer) when a source file changed in place."""
        try:
            return self._rebuilder().pread(offset, length)
        except InlinePieceError as exc:
            event = (
                "provider.inline_mismatch"
                if isinstance(exc, SourceBytesMismatch)
                else "provider.inline_failed"
            )
            log_event(
                log,
                event,
                logging.ERROR,
                car=self._car_id,
                offset=offset,
                file=exc.file or "",
                error=str(exc),
            )
            raise

    def close(self) -> None:
        """Drop the buffered bytes."""
        if self._reader is not None:
            self._reader.close()


@dataclass(frozen=True, slots=True)
class InlinePiece:
    """The source of an inline piece's bytes: its rows and its preparation's source storage."""

    db: Database
    record: PieceRecord

    def describe(self) -> str:
        """A short name for messages."""
        return f"inline piece {self.record.car_id} (rebuilt from its source files)"

    def open(self) -> InlineReader:
        """A reader over the rebuilt piece (no I/O until it is checked or read)."""
        return InlineReader(self.db, self.record)
