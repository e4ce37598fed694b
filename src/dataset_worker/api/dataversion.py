"""A cheap, exact "has the database changed?" check for SQLite: `PRAGMA data_version`.

SQLite documents that the value `PRAGMA data_version` returns on one connection changes
whenever another connection (in this process or any other) commits a change to the database
file, and does not change otherwise (https://sqlite.org/pragma.html#pragma_data_version). So a
connection of our own that never writes (query_only) sees a new value after every commit of the
worker, of other server processes and of this server's pooled connections. Reading it costs a
few microseconds: a read transaction that looks at the WAL index and the database header, no
table.

PostgreSQL has no equivalent: every candidate (a snapshot's xmax, a counter table, LISTEN/NOTIFY)
needs a round trip costing about as much as the query it would spare, or triggers on the jobs
table; `for_database` returns None there and callers do not cache.
"""

from __future__ import annotations

import sqlite3
import threading

from dataset_worker.db import Database


class SqliteDataVersion:
    """A dedicated read-only connection to one SQLite file, asked for its data version."""

    def __init__(self, path: str) -> None:
        # check_same_thread=False: the lock below serialises the few callers.
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # Never wait for a lock (the caller may be an event loop): a busy database reads as
        # "unknown" and the caller simply does not use its cache this time.
        self._connection.execute("PRAGMA busy_timeout = 0")
        # Changes made through this very connection would not change its data_version.
        self._connection.execute("PRAGMA query_only = ON")
        self._lock = threading.Lock()

    def current(self) -> int | None:
        """The data version now; None when it cannot be read right now."""
        with self._lock:
            try:
                row = self._connection.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:
                return None
        return int(row[0]) if row is not None else None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._connection.close()


def for_database(db: Database) -> SqliteDataVersion | None:
    """A data-version check for `db`'s file; None for PostgreSQL and in-memory SQLite."""
    if not db.is_sqlite:
        return None
    path = db.engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return None  # each connection to an in-memory database sees a database of its own
    return SqliteDataVersion(path)
