"""Light Core handles on the tables that short read-only commands query, without the ORM.

The schema is defined once, in models.py; importing it costs the ORM and the mapped classes
(about 60 ms), more than `jobs list` or `prep status` may spend in all. These `table()`s name
just the columns those reads use, with the types the models give them (enum columns as their
stored strings), so that SQLAlchemy converts the values the same way (SQLite's timestamps and
booleans). tests/unit/test_db_tables.py checks every column against models.py.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Text,
    column,
    table,
)

jobs = table(
    "jobs",
    column("id", Integer),
    column("type", String),  # JobType values
    column("state", String),  # JobState values
    column("error_message", Text),
    column("worker_id", String),
    column("attachment_id", Integer),
    column("started_at", DateTime(timezone=True)),
    column("finished_at", DateTime(timezone=True)),
    column("attempts", Integer),
    column("next_attempt_at", DateTime(timezone=True)),
    column("last_worker_id", String),
    column("last_worker_host", String),
)

preparations = table(
    "preparations",
    column("id", Integer),
    column("name", String),
    column("no_dag", Boolean),
    column("auto_chain", Boolean),
)

source_attachments = table(
    "source_attachments",
    column("id", Integer),
    column("preparation_id", Integer),
)

files = table(
    "files",
    column("id", Integer),
    column("size", BigInteger),
    column("attachment_id", Integer),
)

file_ranges = table(
    "file_ranges",
    column("length", BigInteger),
    column("cid", LargeBinary),
    column("file_id", Integer),
)

cars = table(
    "cars",
    column("id", Integer),
    column("piece_type", String),  # PieceType values
    column("root_cid", LargeBinary),
    column("preparation_id", Integer),
)

ALL = (jobs, preparations, source_attachments, files, file_ranges, cars)
