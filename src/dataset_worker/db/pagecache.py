"""A larger SQLite page cache for one big write transaction.

SQLite's default cache is 2 MB a connection. A pack job's recording updates a row of
`file_ranges` and one of `files` per file and inserts each one-leaf range into the leaf-CID
index at a random place: at 60k files that touches far more pages than 2 MB holds, so pages are
read again and dirty ones spilled to the WAL before the commit. Giving every connection a large
cache costs memory in each pooled connection (481 MiB peak for `prepare` at 64 MiB each), so the
cache is raised for the one transaction and set back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection


@contextmanager
def larger_page_cache(conn: Connection, mib: int) -> Iterator[None]:
    """Within this block, `conn` (SQLite) caches up to `mib` MiB of pages; other databases are
    left as they are. The previous size is restored on the way out, error or not."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = {-mib * 1024}")  # negative: KiB, not pages
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before or 0)}")
