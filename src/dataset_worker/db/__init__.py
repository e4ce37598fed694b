"""Database layer: models, engines and transactions, migrations."""

from __future__ import annotations

from dataset_worker.db.engine import Database
from dataset_worker.db.migrate import upgrade


def open_database(url: str, *, pool_size: int = 5, migrate: bool = True) -> Database:
    """Open the database at `url` and bring its schema up to date (first use creates it)."""
    db = Database(url, pool_size=pool_size)
    if migrate:
        upgrade(db.engine)
    return db


__all__ = ["Database", "open_database"]
