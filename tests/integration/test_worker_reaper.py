from __future__ import annotations

import os
import socket
import threading

from sqlalchemy import update

from dataset_worker.db import Database
from dataset_worker.db.models import JobState, JobType, Worker
from dataset_worker.db.queue import (
    ReapResult,
    claim_next_job,
    reap_stale_workers,
    release_jobs_of_process,
)
from dataset_worker.worker.runtime.registry import LiveWorkers, heartbeat, unregister_workers
from tests.integration.worker_support import (
    add_job,
    age_worker,
    job,
    make_attachment,
    new_worker,
    set_state,
    worker_ids,
)


def test_fresh_workers_are_kept(db: Database) -> None:
    attachment = make_attachment(db)
    job_id = add_job(db, attachment, JobType.PACK)
    alive = new_worker(db)
    claim_next_job(db, alive, [JobType.PACK])
    assert reap_stale_workers(db, stale_after=20) == ReapResult(workers=0, jobs=0)
    assert worker_ids(db) == {alive}
    assert job(db, job_id).worker_id == alive


def test_stale_workers_lose_their_jobs_and_rows(db: Database) -> None:
    attachment = make_attachment(db)
    first = add_job(db, attachment, JobType.PACK)
    paused = add_job(db, attachment, JobType.PACK)
    done = add_job(db, attachment, JobType.PACK, JobState.COMPLETE)
    dead, alive = new_worker(db), new_worker(db)
    claim_next_job(db, dead, [JobType.PACK])
    claim_next_job(db, dead, [JobType.PACK])
    set_state(db, paused, JobState.PAUSED)
    age_worker(db, dead, 60)

    assert reap_stale_workers(db, stale_after=20) == ReapResult(workers=1, jobs=1)
    assert worker_ids(db) == {alive}
    assert (job(db, first).state, job(db, first).worker_id) == (JobState.READY, None)
    # A paused job stays paused; the deleted row only clears its owner (FK SET NULL).
    assert (job(db, paused).state, job(db, paused).worker_id) == (JobState.PAUSED, None)
    assert job(db, done).state == JobState.COMPLETE
    # Running it again (another reaper, or the next pass) changes nothing.
    assert reap_stale_workers(db, stale_after=20) == ReapResult(workers=0, jobs=0)
    assert claim_next_job(db, alive, [JobType.PACK]).id == first  # type: ignore[union-attr]


def test_heartbeat_refreshes_and_restores_a_reaped_row(db: Database) -> None:
    me = new_worker(db)
    age_worker(db, me, 60)
    assert heartbeat(db, [me]) == 0
    assert reap_stale_workers(db, stale_after=20).workers == 0
    age_worker(db, me, 60)
    assert reap_stale_workers(db, stale_after=20).workers == 1
    assert heartbeat(db, [me]) == 1  # a live worker that was wrongly reaped comes back
    assert worker_ids(db) == {me}


def test_a_retired_thread_is_not_brought_back_by_heartbeats(db: Database) -> None:
    first, second = new_worker(db), new_worker(db)
    live = LiveWorkers(db, [first, second])
    live.retire(first)
    assert live.beat() == 0
    assert worker_ids(db) == {second}


def test_unregister_releases_processing_jobs(db: Database) -> None:
    attachment = make_attachment(db)
    job_id = add_job(db, attachment, JobType.SCAN)
    me = new_worker(db)
    claim_next_job(db, me, [JobType.SCAN])
    assert unregister_workers(db, [me]) == 1
    assert (job(db, job_id).state, job(db, job_id).worker_id) == (JobState.READY, None)
    assert worker_ids(db) == set()


def test_release_jobs_of_process_only_touches_that_process(db: Database) -> None:
    attachment = make_attachment(db)
    mine = [add_job(db, attachment, JobType.PACK) for _ in range(2)]
    theirs = add_job(db, attachment, JobType.PACK)
    killed = [new_worker(db), new_worker(db)]
    other = new_worker(db)
    for worker_id in killed:
        claim_next_job(db, worker_id, [JobType.PACK])
    claim_next_job(db, other, [JobType.PACK])
    with db.write() as session:
        session.execute(update(Worker).where(Worker.id == other).values(pid=os.getpid() + 1))

    assert release_jobs_of_process(db, socket.gethostname(), os.getpid()) == 2
    assert [job(db, job_id).state for job_id in mine] == [JobState.READY, JobState.READY]
    assert (job(db, theirs).state, job(db, theirs).worker_id) == (JobState.PROCESSING, other)
    assert worker_ids(db) == {other}
    assert release_jobs_of_process(db, socket.gethostname(), os.getpid()) == 0


def test_concurrent_reapers_split_the_work(db: Database) -> None:
    attachment = make_attachment(db)
    jobs = [add_job(db, attachment, JobType.PACK) for _ in range(12)]
    dead = [new_worker(db) for _ in range(12)]
    for worker_id in dead:
        claim_next_job(db, worker_id, [JobType.PACK])
        age_worker(db, worker_id, 60)
    results: list[ReapResult] = []
    start = threading.Barrier(4)

    def reap() -> None:
        start.wait()
        results.append(reap_stale_workers(db, stale_after=20))

    threads = [threading.Thread(target=reap) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 4  # nobody failed
    assert sum(r.workers for r in results) == 12 and sum(r.jobs for r in results) == 12
    assert {job(db, job_id).state for job_id in jobs} == {JobState.READY}
    assert worker_ids(db) == set()
