"""db/pagecache.py: a larger SQLite page cache for one transaction, set back afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from dataset_worker.db import Database
from dataset_worker.db.pagecache import larger_page_cache


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    yield database
    database.dispose()


def test_sqlite_cache_is_raised_inside_and_restored_after(sqlite_db: Database) -> None:
    db = sqlite_db
    with db.read() as session:
        before = session.connection().exec_driver_sql("PRAGMA cache_size").scalar()
    assert before != -64 * 1024
    with db.write() as session:
        conn = session.connection()
        with larger_page_cache(conn, 64):
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -64 * 1024
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == before


def test_sqlite_cache_is_restored_when_the_block_fails(sqlite_db: Database) -> None:
    with sqlite_db.write() as session:
        conn = session.connection()
        before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        with pytest.raises(RuntimeError, match="boom"), larger_page_cache(conn, 8):
            raise RuntimeError("boom")
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == before


@pytest.mark.postgres
def test_other_databases_are_left_alone(postgres_db: Database) -> None:
    with postgres_db.write() as session:
        conn = session.connection()
        with larger_page_cache(conn, 64):  # would fail on PostgreSQL if it sent the pragma
            assert conn.execute(text("SELECT 1")).scalar() == 1
