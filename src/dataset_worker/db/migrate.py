"""Schema migrations (Alembic), run on first use by every process that opens the database.

Several processes may start at once (a server and workers, or workers on many machines), so the
upgrade runs under a lock: a PostgreSQL advisory lock, or on SQLite the write lock itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_KEY = 0x64617461  # "data": any constant shared by all our processes


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest migration shipped with this version."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it already is."""
    # Alembic's INFO lines ("Context impl SQLiteImpl.") are noise in every worker's log.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    head = head_revision()
    with engine.connect() as probe:
        if MigrationContext.configure(probe).get_current_revision() == head:
            return
    # On SQLite, BEGIN IMMEDIATE takes the write lock now, so a concurrent migrator waits for us.
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
        command.upgrade(alembic_config(connection), "head")
