"""Which database errors a transaction retry can cure: known by code, never by message text."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.engine import is_retryable


def _sqlite_busy(tmp_path: Path) -> sqlite3.OperationalError:
    """A real SQLITE_BUSY: a second writer with no busy timeout."""
    path = tmp_path / "busy.db"
    first = sqlite3.connect(path, timeout=0, isolation_level=None)
    second = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        first.execute("CREATE TABLE t (a INTEGER)")
        first.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as caught:
            second.execute("BEGIN IMMEDIATE")
        return caught.value
    finally:
        first.close()
        second.close()


def _sqlite_error(sql: str, *, setup: tuple[str, ...] = ()) -> sqlite3.OperationalError:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for statement in setup:
            connection.execute(statement)
        with pytest.raises(sqlite3.OperationalError) as caught:
            connection.execute(sql)
        return caught.value
    finally:
        connection.close()


def _wrapped(error: Exception) -> sa_exc.OperationalError:
    """The error as SQLAlchemy raises it around a driver's exception."""
    return sa_exc.OperationalError("SELECT 1", {}, error)


def test_sqlite_busy_is_retried(tmp_path: Path) -> None:
    error = _sqlite_busy(tmp_path)
    assert error.sqlite_errorcode & 0xFF == 5  # SQLITE_BUSY
    assert is_retryable(error) and is_retryable(_wrapped(error))


def test_sqlite_locked_is_retried() -> None:
    # Dropping a table that an open cursor of the same connection still reads: SQLITE_LOCKED.
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        connection.execute("CREATE TABLE t (a INTEGER)")
        connection.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        cursor = connection.execute("SELECT a FROM t")
        cursor.fetchone()
        with pytest.raises(sqlite3.OperationalError) as caught:
            connection.execute("DROP TABLE t")
    finally:
        connection.close()
    assert caught.value.sqlite_errorcode & 0xFF == 6  # SQLITE_LOCKED
    assert is_retryable(_wrapped(caught.value))


def test_sqlite_message_that_merely_mentions_a_lock_is_not_retried() -> None:
    error = _sqlite_error('SELECT * FROM "database is locked"')
    assert "database is locked" in str(error) and error.sqlite_errorcode == 1  # SQLITE_ERROR
    assert not is_retryable(error) and not is_retryable(_wrapped(error))
    # An exception built by hand carries no result code at all.
    assert not is_retryable(sqlite3.OperationalError("database is locked"))


def test_run_write_retries_a_busy_database(tmp_path: Path) -> None:
    busy = _wrapped(_sqlite_busy(tmp_path))
    db = Database(f"sqlite:///{tmp_path / 'run.db'}")
    calls = 0

    def work(session: Session) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise busy
        return int(session.execute(text("SELECT 7")).scalar_one())

    try:
        assert db.run_write(work) == 7 and calls == 2
    finally:
        db.dispose()


def test_run_write_does_not_retry_other_errors(tmp_path: Path) -> None:
    error = _wrapped(_sqlite_error('SELECT * FROM "database is locked"'))
    db = Database(f"sqlite:///{tmp_path / 'run.db'}")
    calls = 0

    def work(_session: Session) -> None:
        nonlocal calls
        calls += 1
        raise error

    try:
        with pytest.raises(sa_exc.OperationalError):
            db.run_write(work)
    finally:
        db.dispose()
    assert calls == 1


@pytest.fixture
def pg_table(postgres_url: str) -> Iterator[tuple[str, str]]:
    """(psycopg conninfo, name) of a one-row table on the test PostgreSQL database."""
    conninfo = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    name = f"retry_probe_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, n INTEGER)")
        admin.execute(f"INSERT INTO {name} VALUES (1, 0)")
    try:
        yield conninfo, name
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.postgres
def test_postgres_serialization_failure_is_retried(pg_table: tuple[str, str]) -> None:
    conninfo, table = pg_table
    with psycopg.connect(conninfo) as first, psycopg.connect(conninfo, autocommit=True) as other:
        first.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        first.execute(f"SELECT n FROM {table} WHERE id = 1")
        other.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")
        with pytest.raises(psycopg.Error) as caught:
            first.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")
    assert caught.value.sqlstate == "40001"
    assert is_retryable(caught.value) and is_retryable(_wrapped(caught.value))


@pytest.mark.postgres
def test_postgres_lock_not_available_is_retried(
    postgres_url: str, pg_table: tuple[str, str]
) -> None:
    conninfo, table = pg_table
    db = Database(postgres_url)
    try:
        with psycopg.connect(conninfo) as holder:
            holder.execute(f"LOCK TABLE {table} IN SHARE MODE")
            with pytest.raises(sa_exc.OperationalError) as caught, db.write() as session:
                session.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE NOWAIT"))
    finally:
        db.dispose()
    assert getattr(caught.value.orig, "sqlstate", None) == "55P03"
    assert is_retryable(caught.value)


@pytest.mark.postgres
def test_postgres_message_that_merely_mentions_a_lock_is_not_retried(
    pg_table: tuple[str, str],
) -> None:
    conninfo, _table = pg_table
    with psycopg.connect(conninfo, autocommit=True) as connection:
        with pytest.raises(psycopg.Error) as caught:
            connection.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'database is locked: 40001 40P01 deadlock'; END $$"
            )
    assert caught.value.sqlstate == "P0001" and "database is locked" in str(caught.value)
    assert not is_retryable(caught.value) and not is_retryable(_wrapped(caught.value))
