"""Engines and transactions for SQLite (embedded default) and PostgreSQL (shared queue).

SQLite: WAL, a long busy timeout, foreign keys on. The database file is created 0600 (and an
existing one of ours tightened to it, with its -wal and -shm): it may hold storage secrets, and
every file's path and CID, which on a shared host other users must not read. SQLite gives the
-wal and -shm files the database file's mode. pysqlite's own transaction handling is turned
off so that we emit BEGIN ourselves: writers use BEGIN IMMEDIATE, which takes the write lock up
front (and waits for it under busy_timeout) instead of failing on a read→write lock upgrade.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

# The ORM is imported on first use of a session: short CLI reads run Core statements on
# `engine` and must not pay for it (see cli/common.py).
if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 50_000  # as Singularity
# Errors that mean "another transaction got in the way; run it again" (Singularity DoRetry),
# known by their codes: a message can quote anything (a table or file name, a RAISE in SQL).
RETRYABLE_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (NOWAIT, lock_timeout)
    }
)
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
RETRYABLE_SQLITE_CODES = frozenset({SQLITE_BUSY, SQLITE_LOCKED})


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """Create an engine with the right settings for the database kind."""
    if url.startswith("sqlite"):
        _private_sqlite_file(make_url(url).database)
        # A pool, not a connection per transaction: opening a SQLite connection and running its
        # pragmas costs about a millisecond, which dominated short API reads.
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)


def _private_sqlite_file(path: str | None) -> None:
    """Create the database file 0600 if missing; tighten it and its companions if ours."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(fd)
    except OSError:
        return  # a missing folder or a read-only file: SQLite reports it when it opens it
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            info = os.lstat(name)
            if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                os.chmod(name, info.st_mode & 0o600, follow_symlinks=False)
        except OSError:
            continue  # no such companion (yet)


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # autocommit at the driver: we emit BEGIN ourselves
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode except on power loss
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """An engine plus the two kinds of transaction the application uses."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    @cached_property
    def _read(self) -> sessionmaker[Session]:
        from sqlalchemy.orm import sessionmaker

        return sessionmaker(self.engine, expire_on_commit=False)

    @cached_property
    def _write(self) -> sessionmaker[Session]:
        from sqlalchemy.orm import sessionmaker

        return sessionmaker(self._writer, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (never takes SQLite's write lock)."""
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any exception."""
        with self._write() as session, session.begin():
            yield session

    def run_write(self, fn: Callable[[Session], T], *, attempts: int = 10) -> T:
        """Run `fn` in a write transaction, retrying it whole on lock/serialization conflicts."""
        delay = 0.05
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as session:
                    return fn(session)
            except (OperationalError, DBAPIError) as exc:
                if attempt == attempts or not is_retryable(exc):
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def is_retryable(exc: BaseException) -> bool:
    """True for errors that a re-run of the same transaction can cure."""
    # SQLAlchemy wraps the driver's exception; a bare driver exception is accepted too.
    driver_error = getattr(exc, "orig", None) or exc
    sqlstate = getattr(driver_error, "sqlstate", None)  # psycopg 3
    if isinstance(sqlstate, str):
        return sqlstate in RETRYABLE_SQLSTATES
    code = getattr(driver_error, "sqlite_errorcode", None)  # sqlite3, Python 3.11+
    if isinstance(code, int):
        # The low byte is the primary code: SQLITE_BUSY_SNAPSHOT (517) is a kind of SQLITE_BUSY.
        return (code & 0xFF) in RETRYABLE_SQLITE_CODES
    return False
