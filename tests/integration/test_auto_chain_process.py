"""The pipeline runs itself through the real worker process (`dataset-worker run
--exit-on-complete` in a subprocess), on SQLite and PostgreSQL: create → scan → pack → daggen
with no manual step; with --no-auto the steps wait for their start commands as before."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType
from dataset_worker.prep import (
    CreatePreparationRequest,
    create_preparation,
    get_preparation_status,
    start_daggen,
    start_scan,
)
from dataset_worker.worker.jobs.scan.batching import range_split_size
from tests.integration.worker_support import Spawn, spawner
from tests.support.jobs import reference_root, write_files

MAX_SIZE = 200_000  # ~one file per CAR: several pack jobs
RUN = ["--concurrency", "2", "--exit-on-complete", "--min-interval", "50ms", "--max-interval", "100ms"]  # fmt: skip


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator[Spawn]:
    with spawner(tmp_path, database_url) as start:
        yield start


def make(db: Database, tmp_path: Path, *, no_auto: bool) -> Path:
    source = tmp_path / "source"
    write_files(
        source,
        {"a.bin": 150_000, "b.bin": 150_000, "dir/c.bin": 150_000, "dir/sub/d.txt": b"hello"},
    )
    request = CreatePreparationRequest(
        name="auto",
        source=str(source),
        output=str(tmp_path / "cars"),
        max_size=MAX_SIZE,
        min_piece_size="256KiB",
        no_auto=no_auto,
    )
    view = create_preparation(db, request)
    assert view.auto_chain is not no_auto
    return source


def jobs(db: Database) -> list[tuple[JobType, JobState, str | None]]:
    with db.read() as session:
        rows = session.execute(
            select(Job.type, Job.state, Job.last_worker_host).order_by(Job.id)
        ).all()
    return [(row.type, row.state, row.last_worker_host) for row in rows]


def test_create_then_one_worker_run_does_everything(
    spawn: Spawn, db: Database, tmp_path: Path
) -> None:
    source = make(db, tmp_path, no_auto=False)
    status = get_preparation_status(db, "auto")
    assert (status.stage, status.jobs[JobType.SCAN][JobState.READY]) == ("scanning", 1)

    worker = spawn(None, *RUN)
    assert worker.wait(120) == 0, worker.output()

    found = jobs(db)
    kinds = [kind for kind, _, _ in found]
    assert kinds.count(JobType.SCAN) == 1 and kinds.count(JobType.DAGGEN) == 1
    assert kinds.count(JobType.PACK) >= 3
    assert {state for _, state, _ in found} == {JobState.COMPLETE}
    assert {host for _, _, host in found} == {socket.gethostname()}  # who ran each, kept
    status = get_preparation_status(db, "auto")
    assert status.stage == "done" and status.root_cid is not None
    expected = reference_root(source, range_split_size(MAX_SIZE))
    assert expected is not None and status.root_cid == cid_to_str(expected[0])
    assert "chain.daggen_queued" in worker.output()


def test_no_auto_keeps_the_manual_steps(spawn: Spawn, db: Database, tmp_path: Path) -> None:
    make(db, tmp_path, no_auto=True)
    assert get_preparation_status(db, "auto").stage == "new"
    first = spawn(None, *RUN)
    assert first.wait(60) == 0, first.output()
    assert jobs(db) == []  # nothing was queued

    start_scan(db, "auto")
    second = spawn(None, *RUN)
    assert second.wait(120) == 0, second.output()
    kinds = [kind for kind, _, _ in jobs(db)]
    assert JobType.DAGGEN not in kinds and kinds.count(JobType.PACK) >= 3
    status = get_preparation_status(db, "auto")
    assert (status.stage, status.root_cid) == ("packed", None)

    start_daggen(db, "auto")
    third = spawn(None, *RUN)
    assert third.wait(120) == 0, third.output()
    status = get_preparation_status(db, "auto")
    assert status.stage == "done" and status.root_cid is not None
    assert "chain.daggen_queued" not in second.output() + third.output()
