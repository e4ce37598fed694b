"""Deleting a preparation: its rows, the storages `prep create` made for it, optionally its CARs.

Refused while any of its jobs is processing. The first transaction pauses its ready jobs (so no
worker claims one while rows disappear), then checks that none is processing. Then rows go
children first, in batches, each batch its own transaction: car_blocks, cars, file_ranges with
their files, directories (newest first, so a folder goes before its parent). The preparation row
goes last, with its jobs, attachments and storages, in one transaction that checks the jobs
again (one may have been started meanwhile). Until then the preparation can still be found, so
a delete cut short (a crash, a restarted job) is finished by deleting again. Rows are deleted
explicitly rather than through foreign keys: several are ON DELETE SET NULL and would be left
behind as orphans.

With `delete_cars`, the CAR files recorded in its `cars` rows are removed first: only a file
named `<pieceCID>.car` of such a row, and not when a piece of another preparation uses the same
file. Nothing else in the output folder is touched.

With or without `delete_cars`, a CAR file that one of its jobs published but never recorded (the
worker was killed between the two: its intent is left in `car_publications`) is removed, unless
a `cars` row or another job's intent uses the same file: it is no result of the preparation, and
once the jobs are gone nothing would know it. If its output cannot be reached, the delete is
refused (Conflict) before any row goes, and deleting again retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Delete, delete, or_, select
from sqlalchemy.orm import Session

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database, publications, queue
from dataset_worker.db.models import (
    Car,
    CarBlock,
    CarPublication,
    Directory,
    File,
    FileRange,
    Job,
    JobState,
    OutputAttachment,
    Preparation,
    SourceAttachment,
    Storage,
)
from dataset_worker.logs import log_event
from dataset_worker.prep.errors import Conflict
from dataset_worker.prep.lookup import find_preparation
from dataset_worker.prep.views import View
from dataset_worker.storage import OutputStorage, StorageError
from dataset_worker.storage.select import open_output

logger = logging.getLogger(__name__)

BATCH = 2000  # rows per transaction: short write locks, bounded memory
IMPLICIT_SUFFIXES = ("-source", "-output")  # the storages `prep create` names after the prep


class RemovedCounts(View):
    """How many rows (and CAR files) one delete removed."""

    preparations: int = 0
    source_attachments: int = 0
    output_attachments: int = 0
    storages: int = 0
    jobs: int = 0
    directories: int = 0
    files: int = 0
    file_ranges: int = 0
    cars: int = 0
    car_blocks: int = 0
    car_files: int = 0
    unrecorded_car_files: int = 0


class DeleteReport(View):
    """The reply of a delete: what was removed, and the storages kept for other preparations."""

    id: int
    name: str
    removed: RemovedCounts
    kept_storages: list[str]


@dataclass(frozen=True)
class _Target:
    """What the batches work on, fixed by the first transaction."""

    prep_id: int
    name: str
    attachments: tuple[int, ...]

    def cars(self) -> ColumnElement[bool]:
        """Condition on `cars` rows that belong to the preparation."""
        return or_(Car.preparation_id == self.prep_id, Car.attachment_id.in_(self.attachments))


def delete_preparation(
    db: Database, preparation: str | int, *, delete_cars: bool = False
) -> DeleteReport:
    """Delete `preparation` and everything recorded for it; with `delete_cars`, its CAR files.

    Raises NotFound for an unknown preparation and Conflict while one of its jobs is processing.
    """
    target = db.run_write(lambda session: _hold(session, preparation))
    removed = RemovedCounts(unrecorded_car_files=_remove_unrecorded(db, target))
    if delete_cars:
        removed.car_files = _remove_car_files(db, target)
    ours = select(Car.id).where(target.cars())
    removed.car_blocks = _drain(db, lambda s: _delete_batch(s, CarBlock, CarBlock.car_id.in_(ours)))
    removed.cars = _drain(db, lambda s: _delete_batch(s, Car, target.cars()))
    for attachment in target.attachments:
        files, ranges = _delete_files(db, attachment)
        removed.files += files
        removed.file_ranges += ranges
        removed.directories += _delete_directories(db, attachment)
    final, kept = db.run_write(lambda session: _finish(session, target))
    removed = removed.model_copy(update=final)
    log_event(
        logger,
        "preparation.deleted",
        id=target.prep_id,
        preparation=target.name,
        **removed.model_dump(),
    )
    return DeleteReport(id=target.prep_id, name=target.name, removed=removed, kept_storages=kept)


def _hold(session: Session, preparation: str | int) -> _Target:
    """Pause the preparation's ready jobs; refuse while any of its jobs is processing."""
    prep = find_preparation(session, preparation)
    attachments = tuple(a.id for a in prep.source_attachments)
    # Paused first, checked after: a worker that claimed a job before our update shows up as
    # processing below; one that comes after finds nothing ready.
    queue.pause(session, Job.attachment_id.in_(attachments), from_states=(JobState.READY,))
    _refuse_if_processing(session, prep.name, attachments)
    return _Target(prep.id, prep.name, attachments)


def _refuse_if_processing(session: Session, name: str, attachments: Sequence[int]) -> None:
    busy = session.execute(
        select(Job.id, Job.type)
        .where(Job.attachment_id.in_(attachments), Job.state == JobState.PROCESSING)
        .order_by(Job.id)
    ).all()
    if busy:
        listed = ", ".join(f"{job_type.value} job {job_id}" for job_id, job_type in busy)
        raise Conflict(
            f'preparation "{name}" cannot be deleted while jobs are processing ({listed}): '
            "pause them or wait until they finish, then delete again"
        )


def _drain(db: Database, batch: Callable[[Session], int]) -> int:
    """Run `batch` in its own write transaction until it deletes nothing; the total deleted."""
    total = 0
    while deleted := db.run_write(batch):
        total += deleted
    return total


def _delete_batch(session: Session, model: type[CarBlock | Car], where: ColumnElement[bool]) -> int:
    """Delete up to BATCH rows of `model` matching `where`."""
    ids = list(session.scalars(select(model.id).where(where).limit(BATCH)))
    return _delete(session, delete(model).where(model.id.in_(ids))) if ids else 0


def _delete_files(db: Database, attachment: int) -> tuple[int, int]:
    """Files of the attachment with their ranges, a batch of files per transaction."""

    def batch(session: Session) -> tuple[int, int]:
        ids = list(
            session.scalars(select(File.id).where(File.attachment_id == attachment).limit(BATCH))
        )
        if not ids:
            return 0, 0
        ranges = _delete(session, delete(FileRange).where(FileRange.file_id.in_(ids)))
        return _delete(session, delete(File).where(File.id.in_(ids))), ranges

    files = ranges = 0
    while True:
        # Counted once committed: run_write may run a batch again after a lock conflict.
        done_files, done_ranges = db.run_write(batch)
        if not done_files:
            return files, ranges
        files += done_files
        ranges += done_ranges


def _delete_directories(db: Database, attachment: int) -> int:
    """The attachment's folders, newest first: a folder is created after its parent, so the
    batches take children before their parents and no cascade reaches beyond one batch."""
    below: int | None = None

    def batch(session: Session) -> tuple[int, int | None]:
        query = select(Directory.id).where(Directory.attachment_id == attachment)
        if below is not None:
            query = query.where(Directory.id < below)  # keyset: no re-sorting what is left
        ids = list(session.scalars(query.order_by(Directory.id.desc()).limit(BATCH)))
        if not ids:
            return 0, None
        # Every selected folder is gone after this, deleted here or by the parent_id cascade
        # (which the row count leaves out), so the batch's size is the count.
        session.execute(delete(Directory).where(Directory.id.in_(ids)))
        return len(ids), ids[-1]

    total = 0
    while True:
        deleted, lowest = db.run_write(batch)
        if lowest is None:
            return total
        total += deleted
        below = lowest


def _delete(session: Session, statement: Delete) -> int:
    result = cast("CursorResult[Any]", session.execute(statement))
    return int(result.rowcount)


def _finish(session: Session, target: _Target) -> tuple[dict[str, int], list[str]]:
    """Jobs, attachments, the preparation and its own storages, in one transaction."""
    prep = find_preparation(session, target.prep_id)
    _refuse_if_processing(session, prep.name, target.attachments)
    storages = _implicit_storages(prep)
    counts = {
        "jobs": _delete(session, delete(Job).where(Job.attachment_id.in_(target.attachments))),
        "source_attachments": _delete(
            session, delete(SourceAttachment).where(SourceAttachment.preparation_id == prep.id)
        ),
        "output_attachments": _delete(
            session, delete(OutputAttachment).where(OutputAttachment.preparation_id == prep.id)
        ),
        "preparations": _delete(session, delete(Preparation).where(Preparation.id == prep.id)),
        "storages": 0,
    }
    kept: list[str] = []
    for storage_id, name in storages:
        if _storage_in_use(session, storage_id):
            kept.append(name)
        else:
            counts["storages"] += _delete(session, delete(Storage).where(Storage.id == storage_id))
    return counts, kept


def _implicit_storages(prep: Preparation) -> list[tuple[int, str]]:
    """The storages made by `prep create` for this preparation: "<name>-source/-output"."""
    attached = [a.storage for a in prep.source_attachments]
    attached += [a.storage for a in prep.output_attachments]
    names = {f"{prep.name}{suffix}" for suffix in IMPLICIT_SUFFIXES}
    return sorted({(s.id, s.name) for s in attached if s.name in names})


def _storage_in_use(session: Session, storage_id: int) -> bool:
    """True when another preparation attaches the storage or records pieces in it."""
    uses = (
        select(SourceAttachment.id).where(SourceAttachment.storage_id == storage_id),
        select(OutputAttachment.id).where(OutputAttachment.storage_id == storage_id),
        select(Car.id).where(Car.storage_id == storage_id),
    )
    return any(session.scalar(query.limit(1)) is not None for query in uses)


def _remove_unrecorded(db: Database, target: _Target) -> int:
    """Remove the CAR files its jobs published without recording them; returns how many."""
    outputs: dict[int, OutputStorage] = {}  # one client per storage

    def remove(
        storage_id: int, kind: str, folder: str, config: Mapping[str, Any], path: str
    ) -> None:
        try:
            output = outputs.get(storage_id) or open_output(kind, folder, config)
            outputs[storage_id] = output
            output.remove(path)
        except (OSError, StorageError) as exc:
            # Refused rather than left behind: once the jobs are gone nothing would know it.
            raise Conflict(
                f'preparation "{target.name}" cannot be deleted yet: its unrecorded CAR file '
                f'"{path}" in the output "{folder}" could not be removed ({exc}); '
                "delete again once the output can be reached"
            ) from exc

    jobs = select(Job.id).where(Job.attachment_id.in_(target.attachments))
    intents = publications.pending(db, CarPublication.job_id.in_(jobs))
    return sum(publications.clear(db, intent, remove) for intent in intents)


def _remove_car_files(db: Database, target: _Target) -> int:
    """Remove the preparation's `<pieceCID>.car` files; returns how many existed and went."""
    with db.read() as session:
        rows = session.execute(
            select(Car.piece_cid, Car.storage_path, Storage.id, Storage.type, Storage.path)
            .join(Storage, Storage.id == Car.storage_id)
            .where(target.cars())
            .order_by(Car.id)
        ).all()
        shared = _shared_car_files(session, target)
        # The config says where and how to connect (S3 endpoint, SFTP host…).
        configs = {
            storage_id: dict(config or {})
            for storage_id, config in session.execute(
                select(Storage.id, Storage.config).where(Storage.id.in_({r[2] for r in rows}))
            )
        }
    removed = 0
    outputs: dict[int, OutputStorage] = {}  # one client per storage, not per CAR
    for piece, file_name, storage_id, kind, folder in rows:
        if file_name != cid_to_str(piece) + ".car" or (folder, file_name) in shared:
            continue  # not a name this program gave, or a file another preparation uses
        try:
            output = outputs.get(storage_id) or open_output(kind, folder, configs[storage_id])
            outputs[storage_id] = output
            if output.exists(file_name) is not None:
                output.remove(file_name)
                removed += 1
        except (OSError, StorageError) as exc:
            log_event(
                logger,
                "preparation.car_not_removed",
                logging.WARNING,
                preparation=target.name,
                path=file_name,
                error=str(exc),
            )
    return removed


def _shared_car_files(session: Session, target: _Target) -> set[tuple[str, str]]:
    """(output folder, file name) of CAR files that pieces of other preparations record."""
    ours = select(Car.id).where(target.cars())
    rows = session.execute(
        select(Storage.path, Car.storage_path)
        .join(Storage, Storage.id == Car.storage_id)
        .where(
            Car.storage_path.in_(select(Car.storage_path).where(target.cars())),
            Car.id.not_in(ours),
        )
    )
    return {(folder, name) for folder, name in rows}
