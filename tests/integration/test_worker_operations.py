"""Operating a real `dataset-worker run` process: which jobs it claims (`--prep`), when
`--exit-on-complete` may exit and with which code, and how fast a dead worker's jobs come back
when the dead process was on this host."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType, Worker, utcnow
from tests.integration.worker_support import (
    Spawn,
    add_job,
    job,
    make_attachment,
    spawner,
    worker_ids,
)
from tests.support.wait import wait_until

FAST = ["--min-interval", "50ms", "--max-interval", "100ms"]
# A dead worker's heartbeat would turn stale only after ten minutes: any quicker recovery in
# these tests comes from what the test is about.
SLOW_STALE = ["--stale-after", "10m"]


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator[Spawn]:
    with spawner(tmp_path, database_url) as start:
        yield start


def test_prep_limits_the_claims_to_those_preparations(spawn: Spawn, db: Database) -> None:
    ours, also, theirs = (make_attachment(db, name) for name in ("ours", "also", "theirs"))
    mine = [add_job(db, ours, JobType.SCAN), add_job(db, also, JobType.PACK)]
    other = add_job(db, theirs, JobType.SCAN)  # the lowest-priority type would not hide it
    worker = spawn("quick", "--exit-on-complete", "--prep", "ours", "--prep", "also", *FAST)
    assert worker.wait() == 0, worker.output()
    assert [job(db, job_id).state for job_id in mine] == [JobState.COMPLETE] * 2
    assert job(db, other).state is JobState.READY


def test_an_unknown_prep_is_refused_by_name(spawn: Spawn, db: Database) -> None:
    worker = spawn(None, "--exit-on-complete", "--prep", "nowhere")
    assert worker.wait() == 2, worker.output()
    assert "--prep" in worker.output() and "nowhere" in worker.output()


def test_exit_on_complete_waits_for_a_stale_job_to_be_reclaimed(spawn: Spawn, db: Database) -> None:
    """A job `processing` under a worker that stopped beating (on another host) is not done:
    the worker waits for the reaper to make it ready, runs it, then exits 0."""
    job_id = add_job(db, make_attachment(db), JobType.PACK)
    # Its last beat looks recent for another ten seconds: long after the worker below started
    # and found nothing to claim.
    recent = utcnow() + timedelta(seconds=10)
    with db.write() as session:
        session.add(
            Worker(id="gone-elsewhere", hostname="another-host", pid=1, last_heartbeat=recent)
        )
        session.flush()
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state=JobState.PROCESSING, worker_id="gone-elsewhere")
        )
    quick_stale = ["--heartbeat-interval", "200ms", "--stale-after", "1s"]
    worker = spawn("quick", "--exit-on-complete", *FAST, *quick_stale)
    assert worker.wait(60) == 0, worker.output()
    assert job(db, job_id).state is JobState.COMPLETE, worker.output()
    assert "reaper.reaped" in worker.output()


def test_exit_on_complete_exits_1_when_a_job_of_its_scope_failed(
    spawn: Spawn, db: Database
) -> None:
    ours, theirs = make_attachment(db, "ours"), make_attachment(db, "theirs")
    failing = add_job(db, ours, JobType.PACK)
    old = add_job(db, theirs, JobType.PACK, JobState.ERROR)  # failed before this run
    with db.write() as session:
        session.execute(
            update(Job).where(Job.id == old).values(finished_at=utcnow() - timedelta(hours=1))
        )
    worker = spawn("fail", "--exit-on-complete", "--prep", "ours", *FAST)
    assert worker.wait() == 1, worker.output()
    assert job(db, failing).state is JobState.ERROR
    assert "worker.jobs_failed" in worker.output() and "jobs=1" in worker.output()
    # An error left from before the run is not this run's failure.
    calm = spawn("quick", "--exit-on-complete", *FAST)
    assert calm.wait() == 0, calm.output()


def test_a_dead_local_process_has_its_jobs_reclaimed_at_once(spawn: Spawn, db: Database) -> None:
    job_id = add_job(db, make_attachment(db), JobType.PACK)
    victim = spawn("block", *FAST, *SLOW_STALE)
    wait_until(lambda: job(db, job_id).state == JobState.PROCESSING, 30, "job claimed")
    victim.signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    dead_owner = job(db, job_id).worker_id
    assert dead_owner in worker_ids(db)  # fresh heartbeat: not stale for ten minutes
    rescuer = spawn("quick", "--exit-on-complete", *FAST, *SLOW_STALE)
    assert rescuer.wait(60) == 0, rescuer.output()
    assert job(db, job_id).state is JobState.COMPLETE, rescuer.output()
    assert "reaper.reaped" in rescuer.output()
    assert dead_owner not in worker_ids(db)
