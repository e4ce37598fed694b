"""Work starts when it is queued: a worker idling at the longest poll back-off (160 s) claims a
job queued meanwhile at once, not at its next poll. Real worker processes, SQLite and
PostgreSQL: `prep create` rings the wake socket of its state dir; on PostgreSQL the trigger's
NOTIFY wakes a worker of another state dir (another machine) too. The deadlines are far below
160 s but this asserts that the claim happens, not how fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from dataset_worker.cli import app
from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType
from dataset_worker.wakeup import ring, wake_dir
from tests.integration.api_support import (
    AdminServer,
    create_preparation,
    make_source,
    start_worker,
    wait_for_log,
)
from tests.integration.worker_support import Spawn, WorkerProcessUnderTest, spawner
from tests.support.wait import wait_until

IDLE = ["--min-interval", "160s", "--max-interval", "160s", "--no-enable-pack", "--no-enable-dag"]
DEADLINE = 30.0  # well under the 160 s poll: only a wake-up can make it


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator[Spawn]:
    with spawner(tmp_path, database_url) as start:
        yield start


def _idle(worker: WorkerProcessUnderTest) -> None:
    wait_until(lambda: "worker.idle" in worker.output(), 60, "the worker to go idle")


def _create(database_url: str, state_dir: Path, source: Path, name: str) -> None:
    source.mkdir()
    (source / "a.txt").write_text("a")
    args = ["--state-dir", str(state_dir), "--database-url", database_url, "prep", "create"]
    args += ["--name", name, "--source", str(source), "--output", str(source) + "-cars"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def _scan_claimed(db: Database, name: str) -> None:
    def claimed() -> bool:
        with db.read() as session:
            states = session.scalars(select(Job.state).where(Job.type == JobType.SCAN)).all()
        return bool(states) and JobState.READY not in states

    wait_until(claimed, DEADLINE, f"the scan of {name} to be claimed")


def test_prep_create_wakes_an_idle_worker_of_its_state_dir(
    spawn: Spawn, db: Database, database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()  # (a SQLite worker makes it; a PostgreSQL one uses it)
    worker = spawn(None, *IDLE)  # state dir: tmp_path / "state" (worker_support)
    _idle(worker)
    assert list(wake_dir(tmp_path / "state").iterdir())  # it listens
    _create(database_url, tmp_path / "state", tmp_path / "src", "woken")
    _scan_claimed(db, "woken")
    worker.signal(2)
    assert worker.wait(30) == 130
    assert list(wake_dir(tmp_path / "state").iterdir()) == []  # it stopped listening


@pytest.mark.postgres
def test_postgres_notify_wakes_a_worker_of_another_state_dir(
    spawn: Spawn, db: Database, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    worker = spawn(None, *IDLE)
    _idle(worker)
    # Another state dir: no socket of that worker is rung, only the database can wake it.
    _create(database_url, tmp_path / "elsewhere", tmp_path / "src", "notified")
    assert not wake_dir(tmp_path / "elsewhere").exists()
    _scan_claimed(db, "notified")


def test_ring_removes_the_marker_of_a_worker_that_is_gone(tmp_path: Path) -> None:
    folder = wake_dir(tmp_path)
    folder.mkdir()
    (folder / "999999-deadbeef").touch()  # no socket behind it
    assert ring(tmp_path) == 0
    assert list(folder.iterdir()) == []
    assert ring(tmp_path / "never-used") == 0


def test_the_admin_server_wakes_the_worker_it_manages(
    admin_server: AdminServer, db: Database, tmp_path: Path
) -> None:
    client = admin_server.client()
    start_worker(client, minInterval="160s", maxInterval="160s", enablePack=False, enableDag=False)
    wait_for_log(client, "worker.idle")
    source = make_source(tmp_path / "served", {"a.txt": 10})
    create_preparation(client, "served", source, tmp_path / "served-cars")
    _scan_claimed(db, "served")


def test_a_scan_wakes_the_idle_threads_of_its_process_to_pack(
    spawn: Spawn, db: Database, database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()
    worker = spawn(None, "--concurrency", "2", "--min-interval", "160s", "--max-interval", "160s")
    wait_until(lambda: worker.output().count("worker.idle") >= 2, 60, "both threads idle")
    source = make_source(tmp_path / "many", {f"f{i:02}.bin": 300_000 for i in range(12)})
    args = [
        "--state-dir",
        str(tmp_path / "state"),
        "--database-url",
        database_url,
        "prep",
        "create",
    ]
    args += ["--name", "many", "--source", str(source), "--output", str(tmp_path / "many-cars")]
    args += ["--max-size", "600KiB", "--min-piece-size", "256KiB"]
    assert CliRunner().invoke(app, args).exit_code == 0

    def packers() -> set[str]:
        with db.read() as session:
            return {
                worker_id
                for worker_id in session.scalars(
                    select(Job.last_worker_id).where(Job.type == JobType.PACK)
                )
                if worker_id
            }

    # The thread that scanned packs too; the other one was asleep for 160 s: only the scan's
    # wake-up makes it join in.
    wait_until(lambda: len(packers()) == 2, DEADLINE, "both threads to pack")
