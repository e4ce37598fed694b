"""Schema migrations (Alembic), run on first use by every process that opens the database.

Several processes may start at once (a server and workers, or workers on many machines), so the
upgrade runs under a lock: a PostgreSQL advisory lock, or on SQLite the write lock itself.

Alembic is imported only when there is something to do: a database already at the newest
revision is recognised with one SELECT, which keeps short CLI commands fast.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_KEY = 0x64617461  # "data": any constant shared by all our processes
_REVISION = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest migration shipped with this version."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def shipped_head() -> str | None:
    """The newest migration read from the version files' `revision`/`down_revision` lines,
    without importing Alembic; None when they cannot be read that simply (Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict((key, value) for key, value in _REVISION.findall(path.read_text()))
        if "revision" not in found:
            continue
        revision, parent = _literal(found["revision"]), _literal(found.get("down_revision", ""))
        if revision is None:
            return None
        revisions.add(revision)
        if parent is not None:
            parents.add(parent)
        elif found.get("down_revision") != "None":
            return None  # a tuple (a merge) or something else: not simple
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _literal(value: str) -> str | None:
    match = re.fullmatch(r"""(["'])([\w.-]+)\1""", value)
    return match.group(2) if match else None


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest shipped revision (checked without Alembic)."""
    head = shipped_head()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return False  # no version table yet: a new database
    return [row[0] for row in rows] == [head]


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it already is."""
    if is_current(engine):
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext

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
