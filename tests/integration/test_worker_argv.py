"""The database URL, which may carry a password, never appears on a process's command line.

Any local user can read another user's argv (`ps`, /proc/<pid>/cmdline); the environment is
readable by the process's owner only. A worker started through the admin API gets the URL in
its environment, and neither the worker's nor the log pump's argv holds it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dataset_worker.config import ENV_DATABASE_URL
from dataset_worker.db.models import Base
from dataset_worker.manager.runrecord import WorkerPaths, read_record
from tests.integration.api_support import (
    AdminServer,
    running_server,
    wait_for_log,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def secret_url(postgres_url: str) -> Iterator[tuple[str, str]]:
    """(URL, password) of a role with a password on the test database; dropped afterwards."""
    role = f"dw_secret_test_{secrets.token_hex(4)}"
    password = f"pw-{secrets.token_hex(12)}"
    admin_url = make_url(postgres_url).set(drivername="postgresql")
    conninfo = admin_url.render_as_string(hide_password=False)
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")  # no jobs of other tests
        admin.execute(f"CREATE ROLE {role} WITH LOGIN PASSWORD '{password}'")
        admin.execute(f"GRANT ALL ON SCHEMA public TO {role}")
        admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        admin.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    url = make_url(postgres_url).set(username=role, password=password)
    try:
        yield url.render_as_string(hide_password=False), password
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            # Its sessions first: DROP ROLE fails while the role is connected.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


@pytest.fixture
def secret_server(tmp_path: Path, secret_url: tuple[str, str]) -> Iterator[AdminServer]:
    """A server given the password-carrying URL in its environment, as a careful admin would."""
    yield from running_server(tmp_path, secret_url[0], url_in_env=True)


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read()


def _all_command_lines() -> Iterator[tuple[int, bytes]]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                yield int(name), _cmdline(int(name))
            except OSError:
                continue  # exited meanwhile


def test_database_url_is_never_on_a_command_line(
    secret_server: AdminServer, secret_url: tuple[str, str]
) -> None:
    url, password = secret_url
    client = secret_server.client()
    started = client.post("/api/dataset-worker/start", json={"minInterval": "100ms"})
    assert started.status_code == 200, started.text
    pid = started.json()["pid"]
    wait_for_log(client, "worker.idle")  # it opened the database with the URL it was given
    status = client.get("/api/dataset-worker/status")
    assert status.json()["running"] is True and status.json()["state"] == "running"
    record = read_record(WorkerPaths(secret_server.state_dir).record)
    assert record is not None and record.pid == pid and record.pump_pid

    host_part = url.split("@", 1)[1]
    for process in (pid, record.pump_pid):
        argv = _cmdline(process)
        assert argv, f"process {process} is gone"
        assert password.encode() not in argv
        assert host_part.encode() not in argv and b"--database-url" not in argv
    leaking = [p for p, argv in _all_command_lines() if password.encode() in argv]
    assert leaking == [], f"the password is on the command line of {leaking}"

    # It reached the worker through the environment, which only its owner can read.
    with open(f"/proc/{pid}/environ", "rb") as environ:
        variables = environ.read().split(b"\0")
    assert f"{ENV_DATABASE_URL}={url}".encode() in variables

    # Nor does the API echo it.
    replies = [
        started.text,
        status.text,
        client.get("/api/dataset-worker/audit").text,
        client.get("/api/dataset-worker/logs").text,
        client.get("/healthz").text,
        client.get("/metrics").text,
    ]
    assert not any(password in reply for reply in replies)
