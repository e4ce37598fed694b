"""Publication intents (`car_publications`): a CAR's final name, committed before it is published.

A job publishes `<pieceCID>.car` (a rename, or a server-side copy on S3) before the transaction
that records its `cars` row; a kill in between would leave a file no row knows. So the job first
commits an intent row naming the output storage and path (`announce`), and the recording
transaction deletes it (`settle`). An intent left over marks a file that may be unrecorded:
`clear` removes that file unless something still uses it, then the row.

"Uses" is judged by folder, not storage id: two preparations may write to one output folder
through two `storages` rows and produce the same piece CID. A file is kept while any `cars` row,
or any other intent, names the same path in a storage of the same type and folder. `announce`
and `clear` both lock those `storages` rows first, so a clear cannot remove a file that another
job has announced meanwhile (its recording transaction deletes its intent with the `cars` row
inserted, so either the intent or the row is seen).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, insert, select
from sqlalchemy.orm import Session

from dataset_worker.db.engine import Database
from dataset_worker.db.models import Car, CarPublication, Storage

# remove(storage id, its type, path and config, file path): delete the file if it exists.
Remover = Callable[[int, str, str, Mapping[str, Any], str], None]


def announce(db: Database, job_id: int, storage_id: int, path: str) -> int:
    """Commit the intent to publish `path` in `storage_id` for `job_id`; returns its id."""

    def write(session: Session) -> int:
        _lock_folder(session, storage_id)
        return session.execute(
            insert(CarPublication)
            .values(job_id=job_id, storage_id=storage_id, storage_path=path)
            .returning(CarPublication.id)
        ).scalar_one()

    return db.run_write(write)


def settle(session: Session, intent_id: int) -> None:
    """In the recording transaction: the file is recorded now, so its intent goes."""
    session.execute(delete(CarPublication).where(CarPublication.id == intent_id))


def pending(db: Database, where: ColumnElement[bool]) -> list[int]:
    """Ids of the intents matching `where`, oldest first."""
    with db.read() as session:
        return list(
            session.scalars(select(CarPublication.id).where(where).order_by(CarPublication.id))
        )


def clear(db: Database, intent_id: int, remove: Remover) -> bool:
    """Remove the file of intent `intent_id` unless a `cars` row or another intent uses it, then
    the intent; True when the file was removed. An error from `remove` keeps the intent."""

    def write(session: Session) -> bool:
        row = session.execute(
            select(CarPublication.storage_id, CarPublication.storage_path).where(
                CarPublication.id == intent_id
            )
        ).one_or_none()
        if row is None:
            return False  # cleared meanwhile
        storage_id, path = row
        kind, folder, config = _lock_folder(session, storage_id)
        removed = False
        if not _in_use(session, intent_id, kind, folder, path):
            remove(storage_id, kind, folder, config or {}, path)
            removed = True
        session.execute(delete(CarPublication).where(CarPublication.id == intent_id))
        return removed

    return db.run_write(write)


def _lock_folder(session: Session, storage_id: int) -> tuple[str, str, dict[str, Any]]:
    """Lock every `storages` row of the folder of `storage_id`; its type, path and config."""
    kind, folder, config = session.execute(
        select(Storage.type, Storage.path, Storage.config).where(Storage.id == storage_id)
    ).one()
    session.execute(
        select(Storage.id)
        .where(Storage.type == kind, Storage.path == folder)
        .order_by(Storage.id)
        # FOR NO KEY UPDATE: announces and clears of one folder take turns, while inserting a
        # `cars` row (whose foreign key takes FOR KEY SHARE on the storage) never waits on them.
        .with_for_update(key_share=True)
    ).all()
    return kind, folder, config


def _in_use(session: Session, intent_id: int, kind: str, folder: str, path: str) -> bool:
    """A `cars` row or another intent names `path` in a storage of this type and folder. One
    statement, so one snapshot: a recording that commits meanwhile is seen one way or the other."""
    same_folder = select(Storage.id).where(Storage.type == kind, Storage.path == folder)
    recorded = exists().where(Car.storage_path == path, Car.storage_id.in_(same_folder))
    announced = exists().where(
        CarPublication.storage_path == path,
        CarPublication.storage_id.in_(same_folder),
        CarPublication.id != intent_id,
    )
    return bool(session.scalar(select(recorded | announced)))
