"""The job state machine, walked through db/queue's functions on SQLite and PostgreSQL.

Each allowed transition of docs/architecture.md#job-states-and-transitions is made by the
function that owns it, and each request from a state that does not allow it changes nothing.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime

import pytest
from sqlalchemy import select, update

from dataset_worker.db import Database, queue
from dataset_worker.db.models import Job, JobState, JobType, Worker
from dataset_worker.worker.runtime.retry import RetryPolicy
from tests.integration.worker_support import age_worker, make_attachment, new_worker

PACK = [JobType.PACK]


def state(db: Database, job_id: int) -> JobState:
    with db.read() as session:
        value = session.scalar(select(Job.state).where(Job.id == job_id))
    assert value is not None
    return value


def new_job(db: Database, attachment: int, job_type: JobType = JobType.PACK) -> int:
    with db.write() as session:
        return queue.insert_ready(session, job_type, attachment)


def claimed(db: Database, job_id: int, worker: str) -> None:
    got = queue.claim_next_job(db, worker, PACK)
    assert got is not None and got.id == job_id
    assert state(db, job_id) is JobState.PROCESSING


def test_none_to_ready_to_processing_to_complete_with_the_hook(db: Database) -> None:
    attachment = make_attachment(db)
    job_id = new_job(db, attachment)
    assert state(db, job_id) is JobState.READY
    me = new_worker(db)
    claimed(db, job_id, me)
    seen: list[int] = []
    assert queue.complete_job(db, job_id, me, lambda _session, done: seen.append(done))
    assert state(db, job_id) is JobState.COMPLETE and seen == [job_id]
    # complete → ready only through a request that allows it (a scan/daggen start, the chain)
    with db.write() as session:
        assert queue.make_ready(session, Job.id == job_id, from_states=queue.PACK_START_FROM) == []
        assert queue.pause(session, Job.id == job_id) == []
    assert state(db, job_id) is JobState.COMPLETE
    with db.write() as session:
        (row,) = queue.make_ready(session, Job.id == job_id, from_states=queue.REQUEUE_FROM)
    assert row["state"] is JobState.READY


def test_processing_to_error_and_retry_back_to_ready(db: Database) -> None:
    attachment = make_attachment(db)
    job_id = new_job(db, attachment)
    me = new_worker(db)
    claimed(db, job_id, me)
    assert queue.fail_job(db, job_id, me, "boom", "trace")
    assert state(db, job_id) is JobState.ERROR
    assert queue.claim_next_job(db, me, PACK) is None  # error is never claimed
    with db.write() as session:
        rows = queue.make_ready(session, Job.id == job_id, from_states=queue.RETRY_FROM)
    assert [r["id"] for r in rows] == [job_id] and rows[0]["error_message"] == ""
    assert state(db, job_id) is JobState.READY


def test_transient_failure_goes_back_to_ready_after_a_backoff(db: Database) -> None:
    attachment = make_attachment(db)
    job_id = new_job(db, attachment)
    me = new_worker(db)
    claimed(db, job_id, me)
    policy = RetryPolicy(max_attempts=2, base_delay=60.0, max_delay=60.0)
    record = queue.fail_or_retry(
        db, job_id, me, "reset", "trace", transient=True, policy=policy, rand=lambda: 1.0
    )
    assert record.kind is queue.Failure.RETRY and record.attempts == 1
    assert state(db, job_id) is JobState.READY
    assert queue.claim_next_job(db, me, PACK) is None  # waits out its backoff
    waiting = queue.seconds_until_retry(db, PACK)
    assert waiting is not None and 0 < waiting <= 60
    with db.write() as session:  # due now
        session.execute(update(Job).where(Job.id == job_id).values(next_attempt_at=None))
    claimed(db, job_id, me)
    last = queue.fail_or_retry(db, job_id, me, "reset", "t", transient=True, policy=policy)
    assert last.kind is queue.Failure.ERROR and last.attempts == 2
    assert state(db, job_id) is JobState.ERROR


def test_pause_from_ready_and_processing_and_start_again(db: Database) -> None:
    attachment = make_attachment(db)
    running, ready = new_job(db, attachment), new_job(db, attachment)
    me = new_worker(db)
    claimed(db, running, me)  # the lower id first
    with db.write() as session:
        paused = queue.pause(session, Job.id.in_([ready, running]))
    assert sorted(r["id"] for r in paused) == [running, ready]
    assert {r["worker_id"] for r in paused if r["id"] == running} == {me}  # the monitor's cue
    # The owner's outcome write is guarded: a paused job stays paused.
    assert not queue.complete_job(db, running, me)
    assert not queue.release_job(db, running, me)
    assert state(db, running) is JobState.PAUSED
    assert queue.claim_next_job(db, me, PACK) is None
    with db.write() as session:
        started = queue.make_ready(
            session, Job.attachment_id == attachment, from_states=queue.PACK_START_FROM
        )
    assert sorted(r["id"] for r in started) == [running, ready]


def test_owner_release_and_dead_worker_release(db: Database) -> None:
    attachment = make_attachment(db)
    first, second, third = (new_job(db, attachment) for _ in range(3))
    me = new_worker(db)
    claimed(db, first, me)
    assert queue.release_job(db, first, me)
    assert state(db, first) is JobState.READY
    dead = new_worker(db)
    claimed(db, first, dead)
    claimed(db, second, dead)
    age_worker(db, dead, 3600)
    result = queue.reap_stale_workers(db, stale_after=60)
    assert result == queue.ReapResult(workers=1, jobs=2)
    assert {state(db, first), state(db, second), state(db, third)} == {JobState.READY}
    # processing without an owner is claimable
    with db.write() as session:
        session.execute(
            update(Job).where(Job.id == third).values(state=JobState.PROCESSING, worker_id=None)
        )
    got = queue.claim_next_job(db, me, PACK)
    assert got is not None and got.id == first
    assert queue.release_jobs_of_process(db, socket.gethostname(), os.getpid()) == 1
    assert state(db, first) is JobState.READY


def test_a_gone_local_process_is_reaped_however_fresh(db: Database) -> None:
    attachment = make_attachment(db)
    job_id = new_job(db, attachment)
    dead = new_worker(db)
    claimed(db, job_id, dead)
    with db.write() as session:  # the row of another process of this host
        session.execute(update(Worker).where(Worker.id == dead).values(pid=os.getpid() + 1))
    asked: list[tuple[int, datetime | None]] = []

    def alive(pid: int, registered: datetime | None) -> bool:
        asked.append((pid, registered))
        return False

    assert queue.reap_stale_workers(db, 60, gone=alive) == queue.ReapResult(0, 0)
    assert asked and asked[0][0] == os.getpid() + 1
    assert state(db, job_id) is JobState.PROCESSING
    elsewhere = queue.reap_stale_workers(db, 60, gone=lambda *_: True, hostname="elsewhere")
    assert elsewhere == queue.ReapResult(0, 0)
    assert queue.reap_stale_workers(db, 60, gone=lambda *_: True) == queue.ReapResult(1, 1)
    assert state(db, job_id) is JobState.READY


@pytest.mark.parametrize("job_type", [JobType.SCAN, JobType.DAGGEN])
def test_scan_and_daggen_start_from_complete(db: Database, job_type: JobType) -> None:
    attachment = make_attachment(db)
    job_id = new_job(db, attachment, job_type)
    me = new_worker(db)
    got = queue.claim_next_job(db, me, [job_type])
    assert got is not None
    with db.write() as session:  # a processing job is not restarted
        assert queue.make_ready(session, Job.id == job_id, from_states=queue.START_FROM) == []
    assert queue.complete_job(db, job_id, me)
    with db.write() as session:
        (row,) = queue.make_ready(session, Job.id == job_id, from_states=queue.START_FROM)
    assert row["state"] is JobState.READY
