"""Many machines, one queue: three `dataset-worker run` processes, each with its own state dir and
no shared folder, on one PostgreSQL database, reading and writing S3 (moto). One is killed with
SIGKILL while it holds a pack job; the others take the job over once the reaper returns it, every
pack job completes exactly once, no orphan object is left in the bucket, and the piece CIDs are
those of a single-process run over the same tree in a local folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from dataset_worker.cli import app
from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import Car, Job, JobState, JobType, PieceType, Worker
from tests.support.jobs import write_files
from tests.support.s3servers import S3Server
from tests.support.storages import StorageSpec, make_preparation, run_all
from tests.support.wait import wait_until

MAX_SIZE = 1_000_000
FILES = 40  # 24 MB in 1 MB pack jobs: about 25 of them
TREE: dict[str, int | bytes] = {f"d{i % 3}/f{i:02d}.bin": 600_000 + i for i in range(FILES)}
FAST = ["--min-interval", "100ms", "--max-interval", "500ms"]
# The reaper returns a dead worker's jobs stale-after (+ one reaper pass) after its last beat.
REAPER = ["--heartbeat-interval", "1s", "--stale-after", "3s"]
DEADLINE = 180.0


class WorkerMachine:
    """A `dataset-worker run` process standing in for one machine: its own state dir."""

    def __init__(self, root: Path, index: int, database_url: str, *args: str) -> None:
        self.state = root / f"machine{index}"
        self.state.mkdir(parents=True)
        self.log = root / f"machine{index}.log"
        command = [sys.executable, "-m", "dataset_worker", "--state-dir", str(self.state)]
        command += ["--database-url", database_url, "run", *FAST, *REAPER, *args]
        with self.log.open("wb") as out:
            # Unbuffered: the lines before a SIGKILL must reach the log.
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker did not stop:\n{self.output()[-3000:]}") from None


def _cli(database_url: str, state: Path, *args: str) -> Any:
    result = CliRunner().invoke(
        app, ["--state-dir", str(state), "--database-url", database_url, *args]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.strip().startswith("{") else None


def _poll(condition: Any, what: str, timeout: float = DEADLINE) -> Any:
    return wait_until(condition, timeout, what, every=0.01)


def _held_pack(db: Database, pid: int) -> int | None:
    """A pack job the worker process `pid` is processing, if any."""
    with db.read() as session:
        return session.scalar(
            select(Job.id)
            .join(Worker, Worker.id == Job.worker_id)
            .where(Worker.pid == pid, Job.type == JobType.PACK, Job.state == JobState.PROCESSING)
            .limit(1)
        )


def _pack_states(db: Database, prep_pack_ids: set[int]) -> dict[int, JobState]:
    with db.read() as session:
        rows = session.execute(select(Job.id, Job.state).where(Job.id.in_(prep_pack_ids))).all()
    return dict((job_id, state) for job_id, state in rows)


def _data_pieces(db: Database, job_ids: set[int]) -> list[str]:
    with db.read() as session:
        cids = session.scalars(
            select(Car.piece_cid).where(Car.job_id.in_(job_ids), Car.piece_type == PieceType.DATA)
        ).all()
    return sorted(cid_to_str(c) for c in cids)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_three_machines_share_one_queue_and_survive_a_sigkill(
    postgres_url: str, moto_server: S3Server, tmp_path: Path
) -> None:
    from tests.conftest import _truncate_all

    _truncate_all(postgres_url)
    db = Database(postgres_url)
    try:
        _run_three_machines(db, postgres_url, moto_server, tmp_path)
    finally:
        db.dispose()


def _run_three_machines(db: Database, url: str, s3: S3Server, tmp_path: Path) -> None:
    write_files(tmp_path / "tree", TREE)
    bucket = s3.new_bucket()
    s3.put_tree(bucket, tmp_path / "tree", "in/")
    admin = tmp_path / "admin"
    _cli(url, admin, "storage", "create", "lake", f"s3://{bucket}", "--endpoint", s3.endpoint,
         "--region", "us-east-1", "--json")  # fmt: skip
    _cli(url, admin, "prep", "create", "--name", "many", "--source", "lake:/in", "--output",
         "lake:/cars", "--max-size", str(MAX_SIZE), "--no-auto", "--no-dag", "--json")  # fmt: skip
    _cli(url, admin, "prep", "start-scan", "many")

    machines = [WorkerMachine(tmp_path, i, url, "--concurrency", "1") for i in range(3)]
    try:
        _poll(lambda: _scan_complete(db), "the scan")
        with db.read() as session:
            pack_ids = set(session.scalars(select(Job.id).where(Job.type == JobType.PACK)))
        assert len(pack_ids) >= 20

        victim = machines[0]
        held = _poll(lambda: _held_pack(db, victim.proc.pid), "machine0 to hold a pack job")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        # SIGKILL releases nothing itself: the reaper of a surviving machine returns the job (at
        # once here, as all three share a host and the victim's pid is gone, so the job may
        # already be back by the time this test looks), and a survivor runs it to completion.
        # That the reaper did it, not the victim, is checked on the logs below.
        _poll(lambda: _pack_states(db, {held})[held] is not JobState.PROCESSING, "the reaper",
              timeout=25)  # fmt: skip
        _poll(
            lambda: set(_pack_states(db, pack_ids).values()) == {JobState.COMPLETE},
            "every pack job to complete",
        )
        for machine in machines[1:]:
            assert machine.stop() == 130, machine.output()[-3000:]
    finally:
        for machine in machines:
            if machine.proc.poll() is None:
                machine.proc.kill()
                machine.proc.wait()

    outputs = [m.output() for m in machines]
    assert re.search(rf"job\.claimed job={held} ", outputs[0])
    assert "worker.exit" not in outputs[0]  # killed: it released nothing on its way out
    assert any(re.search(rf"job\.complete .*\bjob={held} ", out) for out in outputs[1:])
    assert any("reaper.reaped" in out for out in outputs[1:])
    assert sum(1 for out in outputs[1:] if "job.complete" in out) == 2  # both survivors worked

    with db.read() as session:
        cars = session.execute(
            select(Car.job_id, Car.piece_cid, Car.storage_path).where(Car.job_id.in_(pack_ids))
        ).all()
    # The IN above never matches a NULL job_id: the filter only tells the type checker.
    assert sorted(job_id for job_id, _, _ in cars if job_id is not None) == sorted(pack_ids)
    assert len(cars) == len(pack_ids)  # exactly one row each
    expected_keys = {f"cars/{cid_to_str(cid)}.car" for _, cid, _ in cars}
    assert {f"cars/{path}" for _, _, path in cars} == expected_keys
    assert set(s3.keys(bucket, "cars/")) == expected_keys  # no temp key, no orphan CAR
    assert set(s3.keys(bucket)) == expected_keys | {f"in/{rel}" for rel in TREE}
    assert s3.uploads(bucket) == []  # the killed upload was aborted by the rerun

    remote = _data_pieces(db, pack_ids)
    assert remote == _local_pieces(db, tmp_path)


def _scan_complete(db: Database) -> bool:
    with db.read() as session:
        states = session.scalars(select(Job.state).where(Job.type == JobType.SCAN)).all()
    assert JobState.ERROR not in states
    return bool(states) and set(states) == {JobState.COMPLETE}


def _local_pieces(db: Database, tmp_path: Path) -> list[str]:
    """The data piece CIDs of one in-process run over the same tree in a local folder."""
    out = tmp_path / "local-out"
    out.mkdir()
    attachment = make_preparation(
        db,
        "local",
        StorageSpec("local", str(tmp_path / "tree")),
        StorageSpec("local", str(out)),
        max_size=MAX_SIZE,
    )
    runs = run_all(db, attachment)
    assert [r.error for r in runs if r.state is not JobState.COMPLETE] == []
    with db.read() as session:
        jobs = set(
            session.scalars(
                select(Job.id).where(Job.attachment_id == attachment, Job.type == JobType.PACK)
            )
        )
    return _data_pieces(db, jobs)
