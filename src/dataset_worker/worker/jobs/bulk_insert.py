"""Inserting many rows and getting their new ids back, fast, on SQLite and PostgreSQL.

The scan records tens of thousands of files per second; SQLAlchemy's generic INSERT … RETURNING
path spends more time building and parsing parameters than the database spends inserting. So:

- SQLite: one driver-level executemany. Our write transaction holds SQLite's only write lock,
  and an INTEGER PRIMARY KEY without AUTOINCREMENT takes max(id)+1 for each new row, so the new
  ids are the next ones in a row (checked afterwards).
- PostgreSQL: take the ids from the table's sequence first (`nextval` over generate_series),
  then send the rows with COPY, ids included.
- Anything else: INSERT … RETURNING through SQLAlchemy.

`insert_rows` is the same without the ids (the scan's ranges): no max(id) checks on SQLite, and
on PostgreSQL COPY takes the ids from the column's default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, text

from dataset_worker.db.models import Directory, File, FileRange


def insert_returning_ids(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[object, ...]]
) -> list[int]:
    """Insert `rows` (values in `columns` order) and return their new ids, in row order."""
    if not rows:
        return []
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return _sqlite(conn, table, columns, rows)
    if dialect == "postgresql":
        return _postgresql(conn, table, columns, rows)
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    params = [dict(zip(columns, row, strict=True)) for row in rows]
    return list(conn.execute(stmt, params).scalars())


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[object, ...]]
) -> None:
    """Insert `rows` (values in `columns` order) when their ids are not needed: one
    executemany on SQLite, COPY on PostgreSQL (the ids come from the column's default)."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql(_insert_sql(conn, table, columns), list(rows))
    elif dialect == "postgresql":
        _copy(conn, table, columns, rows)
    else:
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def _insert_sql(conn: Connection, table: Table, columns: Sequence[str]) -> str:
    quote = conn.dialect.identifier_preparer.quote
    return (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )


def _copy(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[object, ...]]
) -> None:
    quote = conn.dialect.identifier_preparer.quote
    sql = f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    driver: Any = conn.connection.driver_connection  # the psycopg connection, same transaction
    with driver.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def _sqlite(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[object, ...]]
) -> list[int]:
    before = conn.execute(select(func.max(table.c.id))).scalar_one() or 0
    conn.exec_driver_sql(_insert_sql(conn, table, columns), list(rows))
    after = conn.execute(select(func.max(table.c.id))).scalar_one()
    if after != before + len(rows):
        raise RuntimeError(
            f"{table.name}: expected new ids {before + 1}..{before + len(rows)}, got max {after}"
        )
    return list(range(before + 1, after + 1))


def _postgresql(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[object, ...]]
) -> list[int]:
    ids = list(
        conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": len(rows)},
        ).scalars()
    )
    _copy(conn, table, ("id", *columns), ((i, *row) for i, row in zip(ids, rows, strict=True)))
    return ids


def execute_many(conn: Connection, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
    """Run one statement for many rows through the driver's executemany.

    `sql` uses `?` placeholders and quoted-where-needed names; they are turned into `%s` for
    drivers with the format paramstyle (psycopg). Per-row parameter processing in SQLAlchemy
    would cost more than the statement itself when there are 100,000 rows.
    """
    if not rows:
        return
    if conn.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("?", "%s")
    conn.exec_driver_sql(sql, list(rows))


# Core `Table` objects of the models, for executemany statements (Core, not ORM bulk).
DIRECTORIES = cast(Table, Directory.__table__)
FILES = cast(Table, File.__table__)
FILE_RANGES = cast(Table, FileRange.__table__)
