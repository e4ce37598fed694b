from __future__ import annotations

import threading

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType, utcnow
from dataset_worker.db.queue import ClaimedJob, claim_next_job
from tests.integration.worker_support import (
    add_job,
    add_jobs,
    job,
    make_attachment,
    new_worker,
)

ALL = [JobType.DAGGEN, JobType.SCAN, JobType.PACK]


def test_empty_database_has_no_job(db: Database) -> None:
    assert claim_next_job(db, new_worker(db), ALL) is None


def test_priority_is_daggen_then_scan_then_pack(db: Database) -> None:
    attachment = make_attachment(db)
    pack = add_job(db, attachment, JobType.PACK)
    scan = add_job(db, attachment, JobType.SCAN)
    daggen = add_job(db, attachment, JobType.DAGGEN)
    me = new_worker(db)
    claimed = [claim_next_job(db, me, ALL) for _ in range(4)]
    assert [c.id if c else None for c in claimed] == [daggen, scan, pack, None]
    assert claimed[0] == ClaimedJob(id=daggen, type=JobType.DAGGEN, attachment_id=attachment)


def test_disabled_types_are_never_claimed(db: Database) -> None:
    attachment = make_attachment(db)
    add_job(db, attachment, JobType.DAGGEN)
    pack = add_job(db, attachment, JobType.PACK)
    me = new_worker(db)
    claimed = claim_next_job(db, me, [JobType.SCAN, JobType.PACK])
    assert claimed is not None and claimed.id == pack
    assert claim_next_job(db, me, [JobType.SCAN, JobType.PACK]) is None


def test_lowest_id_first_within_a_type(db: Database) -> None:
    attachment = make_attachment(db)
    ids = add_jobs(db, attachment, JobType.PACK, 3)
    me = new_worker(db)
    assert [claim_next_job(db, me, ALL).id for _ in ids] == ids  # type: ignore[union-attr]


def test_claim_sets_owner_state_and_times(db: Database) -> None:
    attachment = make_attachment(db)
    job_id = add_job(db, attachment, JobType.SCAN, JobState.READY)
    with db.write() as session:
        row = session.get(Job, job_id)
        assert row is not None
        row.error_message, row.finished_at = "old failure", utcnow()
    me = new_worker(db)
    claim_next_job(db, me, ALL)
    row = job(db, job_id)
    assert (row.state, row.worker_id, row.error_message) == (JobState.PROCESSING, me, "")
    assert row.started_at is not None and row.finished_at is None


def test_only_ready_or_ownerless_processing_jobs_are_claimable(db: Database) -> None:
    attachment = make_attachment(db)
    other = new_worker(db)
    for state in (JobState.CREATED, JobState.PAUSED, JobState.COMPLETE, JobState.ERROR):
        add_job(db, attachment, JobType.PACK, state)
    add_job(db, attachment, JobType.PACK, JobState.PROCESSING, worker_id=other)
    add_job(db, None, JobType.PACK)  # orphaned by prep deletion: skipped
    orphan = add_job(db, attachment, JobType.PACK, JobState.PROCESSING, worker_id=None)
    ready = add_job(db, attachment, JobType.PACK)
    me = new_worker(db)
    claimed = [claim_next_job(db, me, ALL) for _ in range(3)]
    assert [c.id if c else None for c in claimed] == [orphan, ready, None]


def test_an_ownerless_job_with_a_higher_id_waits_its_turn(db: Database) -> None:
    attachment = make_attachment(db)
    ready = add_job(db, attachment, JobType.PACK)
    orphan = add_job(db, attachment, JobType.PACK, JobState.PROCESSING)
    me = new_worker(db)
    assert claim_next_job(db, me, ALL).id == ready  # type: ignore[union-attr]
    assert claim_next_job(db, me, ALL).id == orphan  # type: ignore[union-attr]


def test_concurrent_claimers_never_share_a_job(db: Database) -> None:
    attachment = make_attachment(db)
    ids = add_jobs(db, attachment, JobType.PACK, 120)
    workers = [new_worker(db) for _ in range(6)]
    claimed: dict[str, list[int]] = {w: [] for w in workers}
    start = threading.Barrier(len(workers))

    def claim_all(worker_id: str) -> None:
        start.wait()
        while (got := claim_next_job(db, worker_id, ALL)) is not None:
            claimed[worker_id].append(got.id)

    threads = [threading.Thread(target=claim_all, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    everything = [job_id for got in claimed.values() for job_id in got]
    assert sorted(everything) == ids  # each job exactly once, none lost
    for worker_id, got in claimed.items():
        assert all(job(db, job_id).worker_id == worker_id for job_id in got)
