"""Operations through the real server and the real worker process (SQLite and PostgreSQL): the
pipeline running itself, retries (API and CLI), the fleet (API and CLI), and jobs that keep
which worker and host ran them."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from dataset_worker.cli import app
from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType, Worker, utcnow
from dataset_worker.prep.lookup import find_preparation
from tests.integration.api_support import (
    AdminServer,
    create_preparation,
    make_source,
    start_worker,
)
from tests.support.wait import wait_until

KIB = 1024
HOST = socket.gethostname()


@pytest.fixture
def server_db(admin_server: AdminServer) -> Iterator[Database]:
    """The server's database, for setting up rows the API then shows."""
    database = Database(admin_server.database_url)
    yield database
    database.dispose()


def error_of(reply: Any, status: int) -> str:
    assert reply.status_code == status, reply.text
    message: str = reply.json()["error"]
    return message


def cli(server: AdminServer, *args: str) -> Any:
    """Run the CLI in process on the server's state dir and database."""
    root = ["--state-dir", str(server.state_dir), "--database-url", server.database_url]
    return CliRunner().invoke(app, [*root, *args])


def attachment_of(db: Database, name: str) -> int:
    with db.read() as session:
        return find_preparation(session, name).source_attachments[0].id


def test_the_pipeline_runs_itself_and_jobs_keep_who_ran_them(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    client = admin_server.client()
    source = make_source(
        tmp_path / "source", {"a.txt": 10 * KIB, "dir/b.bin": 700 * KIB, "dir/c.bin": 900 * KIB}
    )
    prep = create_preparation(client, "auto", source, tmp_path / "cars", maxSize="1000KiB")
    assert prep["autoChain"] is True
    status = client.get("/api/preparations/auto").json()
    assert (status["stage"], status["autoChain"], status["jobs"]["scan"]["ready"]) == (
        "scanning",
        True,
        1,
    )

    pid = start_worker(client, concurrency=2, maxAttempts=3)
    config = client.get("/api/dataset-worker/status").json()["config"]
    assert config["maxAttempts"] == 3
    done = wait_until(
        lambda: (s := client.get("/api/preparations/auto").json())["stage"] == "done" and s,
        120,
        "the preparation to be done with no manual step",
    )
    assert done["rootCid"] and done["jobs"]["daggen"]["complete"] == 1

    jobs = client.get("/api/dataset-worker/jobs", params={"preparation": "auto"}).json()["jobs"]
    assert [job["type"] for job in jobs].count("pack") >= 2
    for job in jobs:
        assert job["status"] == "complete" and job["worker"] is None  # the run is over
        assert job["lastWorker"] and job["lastWorkerHost"] == HOST
        assert (job["attempts"], job["nextAttemptAt"], job["error"]) == (0, None, None)
    # The worker ids recorded are the running process's threads.
    fleet = client.get("/api/workers").json()["workers"]
    ours = {w["id"] for w in fleet if w["pid"] == pid}
    assert {job["lastWorker"] for job in jobs} <= ours


def test_no_auto_waits_for_the_manual_steps(admin_server: AdminServer, tmp_path: Path) -> None:
    client = admin_server.client()
    source = make_source(tmp_path / "source", {"a.txt": 100})
    prep = create_preparation(client, "manual", source, tmp_path / "cars", noAuto=True)
    assert prep["autoChain"] is False
    status = client.get("/api/preparations/manual").json()
    assert (status["stage"], status["autoChain"]) == ("new", False)
    assert client.get("/api/dataset-worker/jobs").json()["jobs"] == []
    body = {"name": "m2", "source": str(source), "output": str(tmp_path / "o"), "noAuto": "maybe"}
    assert "noAuto" in error_of(client.post("/api/preparations", json=body), 400)


def add_jobs(db: Database, attachment: int | None, rows: list[dict[str, Any]]) -> list[int]:
    with db.write() as session:
        return list(
            session.scalars(
                insert(Job).returning(Job.id),
                [
                    {"attachment_id": attachment, "error_message": "", "error_stack_trace": "", **r}
                    for r in rows
                ],
            )
        )


def test_retry_over_the_api(admin_server: AdminServer, server_db: Database, tmp_path: Path) -> None:
    client = admin_server.client()
    create_preparation(client, "p", make_source(tmp_path / "s", {"a": 1}), tmp_path / "o", noAuto=True)  # fmt: skip
    failed = {"state": JobState.ERROR, "error_message": "boom", "attempts": 5,
              "next_attempt_at": utcnow() + timedelta(hours=1), "finished_at": utcnow()}  # fmt: skip
    scan, pack1, _done, pack2 = add_jobs(
        server_db,
        attachment_of(server_db, "p"),
        [
            {"type": JobType.SCAN, **failed},
            {"type": JobType.PACK, **failed},
            {"type": JobType.PACK, "state": JobState.COMPLETE},
            {"type": JobType.PACK, **failed},
        ],
    )
    assert client.get("/api/preparations/p").json()["stage"] == "error"

    packs = client.post("/api/preparations/p/retry", json={"type": "pack"})
    assert packs.status_code == 200, packs.text
    assert [(j["id"], j["type"], j["state"]) for j in packs.json()] == [
        (pack1, "pack", "ready"),
        (pack2, "pack", "ready"),
    ]
    with server_db.read() as session:
        rows = session.execute(
            select(Job.state, Job.attempts, Job.next_attempt_at, Job.error_message)
            .where(Job.id.in_([pack1, pack2]))
        ).all()  # fmt: skip
    assert {tuple(row) for row in rows} == {(JobState.READY, 0, None, "")}

    assert "type" in error_of(client.post("/api/preparations/p/retry", json={"type": "zip"}), 400)
    assert "colour" in error_of(client.post("/api/preparations/p/retry", json={"colour": 1}), 400)
    assert "ghost" in error_of(client.post("/api/preparations/ghost/retry"), 404)

    rest = client.post("/api/preparations/p/retry")  # no body: every type
    assert [(j["id"], j["type"]) for j in rest.json()] == [(scan, "scan")]
    assert client.post("/api/preparations/p/retry", json={}).json() == []  # nothing left
    assert client.get("/api/preparations/p").json()["stage"] == "scanning"


def test_retry_from_the_cli(admin_server: AdminServer, server_db: Database, tmp_path: Path) -> None:
    client = admin_server.client()
    create_preparation(client, "c", make_source(tmp_path / "s", {"a": 1}), tmp_path / "o", noAuto=True)  # fmt: skip
    [daggen, pack] = add_jobs(
        server_db,
        attachment_of(server_db, "c"),
        [
            {"type": JobType.DAGGEN, "state": JobState.ERROR, "attempts": 1},
            {"type": JobType.PACK, "state": JobState.ERROR, "attempts": 5,
             "error_message": "[bold]disk[/bold] on fire", "last_worker_id": "abcdef0123",
             "last_worker_host": "node-7"},
        ],
    )  # fmt: skip
    listed = cli(admin_server, "jobs", "list", "--prep", "c")
    assert listed.exit_code == 0, listed.output
    line = next(row for row in listed.stdout.splitlines() if f" {pack} " in row)
    # Tries, the last error (markup shown as text, not applied) and who ran it.
    assert " 5 " in line and "[bold]disk[/bold] on fire" in line and "abcdef01@node-7" in line
    status = cli(admin_server, "prep", "status", "c")
    assert (
        status.exit_code == 0
        and "Stage" in status.stdout
        and "error (manual steps)" in status.stdout
    )
    bad = cli(admin_server, "prep", "retry", "c", "--type", "zip")
    assert bad.exit_code == 1 and 'type must be one of scan, pack, daggen, got "zip"' in bad.stderr
    only = cli(admin_server, "prep", "retry", "c", "--type", "pack")
    assert only.exit_code == 0, only.output
    assert only.stdout.strip() == f'1 job(s) of preparation "c" are ready again: {pack} (pack)'
    rest = cli(admin_server, "prep", "retry", "c", "--json")
    assert [(j["id"], j["state"]) for j in json.loads(rest.stdout)] == [(daggen, "ready")]
    none = cli(admin_server, "prep", "retry", "c")
    assert none.exit_code == 0 and "nothing changed" in none.stdout
    status = json.loads(cli(admin_server, "prep", "status", "c", "--json").stdout)
    assert (status["stage"], status["autoChain"]) == ("packing", False)


def test_cli_create_queues_the_scan(admin_server: AdminServer, tmp_path: Path) -> None:
    source = make_source(tmp_path / "s", {"a": 1})
    made = cli(admin_server, "prep", "create", "--name", "cli-auto", "--source", str(source),
               "--output", str(tmp_path / "o1"))  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "Scan queued" in made.stdout and "start-scan" not in made.stdout
    status = json.loads(cli(admin_server, "prep", "status", "cli-auto", "--json").stdout)
    assert (status["stage"], status["jobs"]["scan"]["ready"]) == ("scanning", 1)
    manual = cli(admin_server, "prep", "create", "--name", "cli-manual", "--source", str(source),
                 "--output", str(tmp_path / "o2"), "--no-auto", "--json")  # fmt: skip
    assert json.loads(manual.stdout)["autoChain"] is False
    status = json.loads(cli(admin_server, "prep", "status", "cli-manual", "--json").stdout)
    assert status["stage"] == "new" and status["jobs"]["scan"]["ready"] == 0


def test_the_fleet(admin_server: AdminServer, server_db: Database) -> None:
    client = admin_server.client()
    assert client.get("/api/workers").json() == {"workers": [], "staleAfter": 20.0}
    pid = start_worker(client, concurrency=2)

    def ours() -> list[dict[str, Any]]:
        workers: list[dict[str, Any]] = client.get("/api/workers").json()["workers"]
        return [w for w in workers if w["pid"] == pid]

    mine = wait_until(lambda: len(ours()) == 2 and ours(), 60, "the worker's two thread rows")
    for row in mine:
        assert (row["hostname"], row["status"], row["alive"], row["managed"]) == (
            HOST,
            "alive",
            True,
            True,
        )
        assert row["startedAt"].endswith("Z") and row["lastHeartbeat"].endswith("Z")

    # Another machine's worker, alive and holding a job: listed, never "managed".
    with server_db.write() as session:
        session.add(Worker(id="remote-1", hostname="other-host", pid=pid, last_heartbeat=utcnow()))
    [held] = add_jobs(
        server_db,
        None,
        [{"type": JobType.PACK, "state": JobState.PROCESSING, "worker_id": "remote-1"}],
    )
    remote = [w for w in client.get("/api/workers").json()["workers"] if w["id"] == "remote-1"]
    assert remote == [
        {
            **remote[0],
            "hostname": "other-host",
            "status": "alive",
            "alive": True,
            "managed": False,
            "jobs": [{"id": held, "type": "pack", "state": "processing"}],
        }
    ]
    listed = cli(admin_server, "workers", "list", "--json")
    assert listed.exit_code == 0, listed.output
    by_id = {w["id"]: w for w in json.loads(listed.stdout)["workers"]}
    assert {by_id[row["id"]]["managed"] for row in mine} == {True}
    assert by_id["remote-1"]["managed"] is False
    table = cli(admin_server, "workers", "list")
    assert "other-host" in table.stdout and "alive" in table.stdout

    # Once the worker stops its rows go; a row whose heartbeat stopped long ago shows as stale
    # (no running reaper removes it now).
    assert client.post("/api/dataset-worker/stop", params={"timeout": 10}).status_code == 200
    with server_db.write() as session:
        session.add(
            Worker(
                id="silent-1",
                hostname=HOST,
                pid=pid,  # the same host and pid as the stopped worker: not managed any more
                last_heartbeat=utcnow() - timedelta(minutes=5),
                started_at=utcnow() - timedelta(hours=1),
            )
        )
    after = {w["id"]: w for w in client.get("/api/workers").json()["workers"]}
    assert not any(row["id"] in after for row in mine)
    assert (after["silent-1"]["status"], after["silent-1"]["alive"]) == ("stale", False)
    assert after["silent-1"]["managed"] is False
    assert "--stale-after" in cli(admin_server, "workers", "list", "--stale-after", "x").stderr


def test_bad_max_attempts_names_the_field(admin_server: AdminServer) -> None:
    client = admin_server.client()
    message = error_of(client.post("/api/dataset-worker/start", json={"maxAttempts": 0}), 400)
    assert message == "maxAttempts must be between 1 and 100, got 0"
    assert "maxAttempts" in error_of(
        client.post("/api/dataset-worker/start", json={"maxAttempts": "3"}), 400
    )
