"""The real worker process: exit codes, signals, and recovery after kill -9."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataset_worker.db import Database
from dataset_worker.db.models import JobState, JobType
from tests.integration.worker_support import (
    Spawn,
    add_job,
    add_jobs,
    job,
    make_attachment,
    spawner,
    worker_ids,
)
from tests.support.wait import wait_until

FAST = ["--min-interval", "50ms", "--max-interval", "100ms"]
QUICK_RECOVERY = ["--heartbeat-interval", "200ms", "--stale-after", "1s"]


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator[Spawn]:
    with spawner(tmp_path, database_url) as start:
        yield start


def test_no_work_and_exit_on_complete_exits_0(spawn: Spawn, db: Database) -> None:
    worker = spawn(None, "--concurrency", "2", "--exit-on-complete", "--enable-dag=false")
    assert worker.wait() == 0, worker.output()
    out = worker.output()
    assert "worker.start" in out and "types=scan,pack" in out and "concurrency=2" in out
    assert out.count("thread.done") == 2 and "worker.exit code=0" in out
    assert worker_ids(db) == set()


def test_every_job_runs_then_exit_0(spawn: Spawn, db: Database) -> None:
    ids = add_jobs(db, make_attachment(db), JobType.PACK, 5)
    worker = spawn("quick", "--concurrency", "2", "--exit-on-complete", *FAST)
    assert worker.wait() == 0, worker.output()
    assert {job(db, job_id).state for job_id in ids} == {JobState.COMPLETE}
    assert worker.output().count("job.complete") == 5
    assert worker_ids(db) == set()


def test_exit_on_error_exits_1_and_releases_the_other_jobs(spawn: Spawn, db: Database) -> None:
    attachment = make_attachment(db)
    scan = add_job(db, attachment, JobType.SCAN)
    pack = add_job(db, attachment, JobType.PACK)
    worker = spawn("fail-scan", "--concurrency", "2", "--exit-on-error", *FAST)
    assert worker.wait() == 1, worker.output()
    assert job(db, scan).state == JobState.ERROR
    assert job(db, scan).error_message == "scan failed on purpose"
    assert (job(db, pack).state, job(db, pack).worker_id) == (JobState.READY, None)
    assert worker_ids(db) == set()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_job_releases_it_and_exits_130(
    spawn: Spawn, db: Database, signum: int
) -> None:
    job_id = add_job(db, make_attachment(db), JobType.PACK)
    worker = spawn("block", *FAST)
    wait_until(lambda: job(db, job_id).state == JobState.PROCESSING, 20, "job claimed")
    worker.signal(signum)
    assert worker.wait(15) == 130, worker.output()
    row = job(db, job_id)
    assert (row.state, row.worker_id) == (JobState.READY, None)
    assert "job.released" in worker.output() and "worker.exit code=130" in worker.output()
    assert worker_ids(db) == set()


def test_a_second_signal_exits_without_waiting_for_the_job(spawn: Spawn, db: Database) -> None:
    job_id = add_job(db, make_attachment(db), JobType.PACK)
    worker = spawn("stubborn", *FAST)
    wait_until(lambda: job(db, job_id).state == JobState.PROCESSING, 20, "job claimed")
    worker.signal(signal.SIGTERM)
    wait_until(lambda: "worker.signal" in worker.output(), 10, "first signal handled")
    assert worker.proc.poll() is None  # still waiting for the stubborn job
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 130, worker.output()
    assert (job(db, job_id).state, job(db, job_id).worker_id) == (JobState.READY, None)
    assert worker_ids(db) == set()


def test_a_killed_workers_job_is_reclaimed_within_the_stale_window(
    spawn: Spawn, db: Database
) -> None:
    job_id = add_job(db, make_attachment(db), JobType.PACK)
    victim = spawn("block", *FAST, *QUICK_RECOVERY)
    wait_until(lambda: job(db, job_id).state == JobState.PROCESSING, 20, "job claimed")
    dead_owner = job(db, job_id).worker_id
    rescuer = spawn("quick", *FAST, *QUICK_RECOVERY)
    wait_until(lambda: "thread.start" in rescuer.output(), 20, "rescuer started")
    victim.signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    wait_until(lambda: job(db, job_id).state == JobState.COMPLETE, 30, "job redone")
    assert "reaper.reaped" in rescuer.output()
    assert dead_owner not in worker_ids(db)
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait(15) == 130, rescuer.output()
