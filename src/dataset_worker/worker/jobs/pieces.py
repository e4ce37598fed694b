"""Writing one piece: a CAR streamed to a temporary output object while commP hashes the same
bytes, then padding, the final `<pieceCID>.car` name, and cleanup on any failure (docs/formats.md#piece-size-and-padding).

The object is renamed into place before the database transaction that records it, so its final
name is committed first as an intent (db/publications.py), which the recording transaction
deletes. If that transaction fails, the file is removed again unless some `cars` row already
refers to it (a re-run of the same job produces the same bytes under the same name); if the
process is killed in between, the job's next run (`recover_publications`) or `prep delete`
removes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from dataset_worker.content.car import CarWriter
from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import CommP, finalize
from dataset_worker.db import Database, publications
from dataset_worker.db.models import CarPublication
from dataset_worker.logs import log_event
from dataset_worker.sizes import next_power_of_two
from dataset_worker.storage import OutputStorage, TempOutput
from dataset_worker.storage.select import open_output
from dataset_worker.worker.jobs.attachment import OutputTarget

T = TypeVar("T")
log = logging.getLogger(__name__)

# One `car_blocks` row per block of a piece (pack and daggen alike), for driver-level executemany.
# A node's bytes go in raw_block or, compressed, raw_block_zlib (db/nodebytes.py `stored_node`).
CAR_BLOCK_INSERT = (
    "INSERT INTO car_blocks (cid, car_offset, car_block_length, varint, raw_block, "
    "raw_block_zlib, file_offset, car_id, file_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class NoContentError(Exception):
    """Nothing but (at most) a CAR header was written (Singularity ErrNoContent)."""


def padded_car_size(car_size: int, piece_size: int) -> int | None:
    """Singularity's padding rule: when the piece is larger than the CAR's plain next power of
    two, the CAR is filled with zeros up to piece*127/128 bytes; else None (no padding)."""
    if piece_size > next_power_of_two(car_size):
        return piece_size * 127 // 128
    return None


@dataclass(frozen=True, slots=True)
class SealedPiece:
    """A complete CAR: its piece CID and size, CAR root and size (padding included)."""

    piece_cid: bytes
    piece_size: int
    root_cid: bytes
    file_size: int

    @property
    def file_name(self) -> str:
        """`<pieceCID>.car`."""
        return cid_to_str(self.piece_cid) + ".car"


class PieceWriter:
    """`with PieceWriter(target, tag) as piece:` write blocks to `piece.car`, then `seal()` and
    `publish()`. Leaving the block with an exception removes the temporary object.

    With `target=None` (an inline preparation) no file is written: the same CAR bytes only go
    through commP, and the padding is counted in the size without being written.
    """

    def __init__(self, target: OutputTarget | None, tag: str, root: bytes | None = None) -> None:
        self.target = target
        self._temp: TempOutput | None = None if target is None else target.storage.create_temp(tag)
        self._commp = CommP()
        stream = None if self._temp is None else self._temp.stream
        self.car = CarWriter(stream, root, tee=self._commp.update)
        self.sealed: SealedPiece | None = None
        self.publication: int | None = None  # the intent `publish` committed (db/publications.py)

    def __enter__(self) -> PieceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._temp is not None:
            self._temp.discard()  # a no-op once published

    def seal(self, min_piece_size: int, *, pad: bool, min_content: int) -> SealedPiece:
        """commP, final piece size and (when `pad`) Singularity's zero padding.

        `min_content` is the CAR size at or below which nothing counts as written (65 for data
        pieces, 59 for DAG pieces).
        """
        car_size = self.car.bytes_written
        root = self.car.root
        if car_size <= min_content or root is None:
            raise NoContentError("no content to pack")
        commitment, piece_size = finalize(self._commp.digest(), min_piece_size)
        file_size = car_size
        if pad:
            target = padded_car_size(car_size, piece_size)
            if target is not None:
                if self._temp is not None:
                    self._temp.pad_to(target)
                file_size = target  # inline: the rebuilt piece ends with these zeros too
        self.sealed = SealedPiece(piece_cid(commitment), piece_size, root, file_size)
        return self.sealed

    def publish(self, db: Database, job_id: int) -> str:
        """Commit the intent to publish (db/publications.py), then flush, fsync and rename to
        `<pieceCID>.car`; returns the storage path ("" inline)."""
        if self.sealed is None:
            raise RuntimeError("seal() the piece before publishing it")
        if self._temp is None or self.target is None:
            return ""
        # Every backend publishes under exactly the name it is given.
        intent = publications.announce(db, job_id, self.target.storage_id, self.sealed.file_name)
        try:
            path = self._temp.publish(self.sealed.file_name)
        except BaseException:
            _clear_quietly(db, intent, self.target.storage)  # else the job's next run does
            raise
        self.publication = intent
        return path


def _clear_quietly(db: Database, intent: int, output: OutputStorage) -> None:
    """Clear the intent of a publish or recording that failed (its file goes unless a `cars`
    row or another intent uses it); a failure here is logged, the intent then stays."""
    try:
        publications.clear(db, intent, lambda *where: output.remove(where[-1]))
    except Exception as cleanup_error:  # the original error matters more
        log_event(
            log, "piece.cleanup_failed", logging.WARNING, intent=intent, error=str(cleanup_error)
        )


def recover_publications(db: Database, job_id: int, outputs: list[OutputTarget]) -> int:
    """Remove the CAR files an earlier, killed run of `job_id` published but did not record
    (unless a `cars` row or another intent uses them); returns how many were removed."""
    opened = {target.storage_id: target.storage for target in outputs}

    def remove(
        storage_id: int, kind: str, folder: str, config: Mapping[str, Any], path: str
    ) -> None:
        # An output detached since the killed run is opened from its `storages` row.
        (opened.get(storage_id) or open_output(kind, folder, config)).remove(path)

    removed = 0
    for intent in publications.pending(db, CarPublication.job_id == job_id):
        if publications.clear(db, intent, remove):
            removed += 1
            log_event(log, "piece.unrecorded_removed", job=job_id, intent=intent)
    return removed


def record_or_unpublish(
    db: Database,
    output: OutputStorage | None,
    publication: int | None,
    record: Callable[[Session], T],
) -> T:
    """Run the recording transaction, which also deletes the `publication` intent; if it fails,
    delete the published file unless a `cars` row or another intent uses it (inline pieces,
    `output=None`, have no file).

    Only this run's own intent is cleared on failure: the job may run elsewhere by now (a
    reaped worker that lived on), and its intent for the same name must keep the file."""
    if output is None or publication is None:
        return db.run_write(record)

    def write(session: Session) -> T:
        result = record(session)
        publications.settle(session, publication)
        return result

    try:
        return db.run_write(write)
    except BaseException:
        _clear_quietly(db, publication, output)
        raise
