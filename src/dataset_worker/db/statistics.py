"""Fresh planner statistics for the tables a scan fills (PostgreSQL).

Right after a bulk load PostgreSQL plans with the statistics it had before it: none for a new
preparation's rows until autovacuum's ANALYZE comes round (a minute apart at best, never when
it is off). A pack job's queries planned that way were slow: pack jobs of 59k files right after a
1M-file scan took 5.4 to 6.1 s each, and 3.2 to 3.5 s after one ANALYZE of `files` and
`file_ranges` (0.3 s). SQLite plans without such statistics: nothing is done there.
"""

from __future__ import annotations

from dataset_worker.db.engine import Database

SCANNED_TABLES = ("files", "file_ranges")


def analyze(db: Database, tables: tuple[str, ...] = SCANNED_TABLES) -> None:
    """ANALYZE `tables` on PostgreSQL, each in a transaction of its own (ANALYZE holds a lock
    that would block another scan's ANALYZE until the end of the transaction)."""
    if db.is_sqlite:
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.quote(table)}")
