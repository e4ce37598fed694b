"""Shared fixtures: real databases (a SQLite file per test; a fresh PostgreSQL database per run).

With DATASET_WORKER_REQUIRE_ALL_TESTS=1 (set by .ci/run) nothing may skip for lack of a service.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from dataset_worker.db import Database, open_database
from dataset_worker.db.models import Base
from tests.support.s3servers import (  # noqa: F401 - fixtures for every test package
    moto_server,
    rclone_server,
    s3_environment,
    s3_server,
)
from tests.support.sshd import ssh_server  # noqa: F401 - the SFTP tests' server

REQUIRE_ALL = os.environ.get("DATASET_WORKER_REQUIRE_ALL_TESTS") == "1"
ENV_PG = "DATASET_WORKER_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def private_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test touches the real home's state dir: a command given no --state-dir would use
    $XDG_STATE_HOME/dataset-worker, so XDG_STATE_HOME points into the test's folder (and
    subprocesses started with a copy of os.environ inherit it)."""
    home = tmp_path / "xdg-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def skip_or_fail(reason: str) -> None:
    """Skip on a developer machine that lacks a service; fail in CI, where nothing may skip."""
    if REQUIRE_ALL:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (dropped at the end); yields its URL."""
    server = os.environ.get(ENV_PG, "").replace("postgresql+psycopg://", "postgresql://")
    if not server:
        skip_or_fail(f"{ENV_PG} is not set")
    name = f"dw_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at {server} is not reachable: {exc}")
        raise AssertionError("unreachable") from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{server.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    open_database(url).dispose()  # migrate once
    try:
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_all(url: str) -> None:
    db = Database(url)
    try:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with db.write() as session:
            session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        db.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database with every migration applied, made once per test process:
    a copy of it is a fresh database without running the migrations again (~90 ms a test)."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    open_database(f"sqlite:///{path}").dispose()  # the last close checkpoints the WAL into it
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    """URL of an empty, migrated SQLite database in the test's folder."""
    shutil.copyfile(migrated_sqlite, tmp_path / "test.db")
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """URL of an empty, migrated database: SQLite, then the same test on PostgreSQL."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
        return url
    postgres_url: str = request.getfixturevalue("postgres_url")
    _truncate_all(postgres_url)
    return postgres_url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """An open Database on `database_url`."""
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI tables are 240 wide when piped unless COLUMNS is set; some test runners (xdist
    workers, CI terminals) set it, so every test starts without it and sets it when it cares."""
    monkeypatch.delenv("COLUMNS", raising=False)
