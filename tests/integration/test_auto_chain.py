"""The auto chain: the daggen job is queued by the completion that finishes packing — once.

The rule runs through the runtime's completion write (outcomes.complete_job with the real hooks),
on SQLite and PostgreSQL; the concurrent case runs on PostgreSQL with two threads whose
completion transactions are forced to overlap.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select, text, update

from dataset_worker.db import Database
from dataset_worker.db.models import Directory, Job, JobState, JobType, Preparation
from dataset_worker.db.queue import claim_next_job, complete_job
from dataset_worker.prep import retry_jobs
from dataset_worker.worker.jobs.chain import queue_daggen_if_due
from dataset_worker.worker.runtime.handlers import default_completion_hooks
from tests.integration.worker_support import add_job, job, make_attachment, new_worker

HOOKS = default_completion_hooks()


def finish(db: Database, job_id: int) -> bool:
    """Claim-free: make `job_id` processing under a fresh worker, then complete it as the
    runtime does (the completion hook of its type in the same transaction)."""
    worker = new_worker(db)
    with db.write() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(state=JobState.PROCESSING, worker_id=worker)
        )
    kind = job(db, job_id).type
    return complete_job(db, job_id, worker, HOOKS[kind])


def daggen_jobs(db: Database, attachment: int) -> list[tuple[int, JobState]]:
    with db.read() as session:
        rows = session.execute(
            select(Job.id, Job.state)
            .where(Job.type == JobType.DAGGEN, Job.attachment_id == attachment)
            .order_by(Job.id)
        )
        return [(row.id, row.state) for row in rows]


def packed(
    db: Database, packs: int = 2, *, scan: JobState = JobState.COMPLETE
) -> tuple[int, list[int]]:
    """An attachment whose scan is in `scan` state and has `packs` ready pack jobs."""
    attachment = make_attachment(db)
    add_job(db, attachment, JobType.SCAN, scan)
    return attachment, [add_job(db, attachment, JobType.PACK) for _ in range(packs)]


def set_prep(db: Database, **values: object) -> None:
    with db.write() as session:
        session.execute(update(Preparation).values(**values))


def add_directory(db: Database, attachment: int, *, exported: bool) -> None:
    with db.write() as session:
        session.add(Directory(name="", cid=b"\x01q", attachment_id=attachment, exported=exported))


def test_the_last_pack_job_queues_the_daggen(db: Database) -> None:
    attachment, (first, last) = packed(db)
    assert finish(db, first)
    assert daggen_jobs(db, attachment) == []  # one pack job is still ready
    assert finish(db, last)
    [(daggen, state)] = daggen_jobs(db, attachment)
    assert state == JobState.READY
    row = job(db, daggen)
    assert (row.attempts, row.next_attempt_at, row.worker_id) == (0, None, None)


def test_an_errored_pack_job_holds_the_chain_until_a_retry_completes(db: Database) -> None:
    attachment, (broken, fine) = packed(db)
    with db.write() as session:
        session.execute(update(Job).where(Job.id == broken).values(state=JobState.ERROR))
    assert finish(db, fine)
    assert daggen_jobs(db, attachment) == []
    [view] = retry_jobs(db, "prep", "pack")
    assert (view.id, view.state) == (broken, JobState.READY)
    worker = new_worker(db)
    claimed = claim_next_job(db, worker, [JobType.PACK])
    assert claimed is not None and claimed.id == broken
    assert complete_job(db, broken, worker, HOOKS[JobType.PACK])
    assert [state for _, state in daggen_jobs(db, attachment)] == [JobState.READY]


@pytest.mark.parametrize("pending", [JobState.CREATED, JobState.PAUSED, JobState.PROCESSING])
def test_any_pack_job_not_complete_means_packing_goes_on(db: Database, pending: JobState) -> None:
    attachment, (waiting, last) = packed(db)
    with db.write() as session:
        session.execute(update(Job).where(Job.id == waiting).values(state=pending))
    assert finish(db, last)
    assert daggen_jobs(db, attachment) == []


def test_packs_done_before_the_scan_wait_for_the_scan(db: Database) -> None:
    attachment, packs = packed(db, scan=JobState.READY)
    for pack in packs:
        assert finish(db, pack)
    assert daggen_jobs(db, attachment) == []  # the scan may still add pack jobs
    with db.read() as session:
        scan = session.scalar(select(Job.id).where(Job.type == JobType.SCAN))
    assert scan is not None and finish(db, scan)
    assert [state for _, state in daggen_jobs(db, attachment)] == [JobState.READY]


def test_a_scan_with_nothing_to_pack_queues_no_daggen(db: Database) -> None:
    attachment, _ = packed(db, packs=0, scan=JobState.READY)
    with db.read() as session:
        scan = session.scalar(select(Job.id).where(Job.type == JobType.SCAN))
    assert scan is not None and finish(db, scan)
    assert daggen_jobs(db, attachment) == []  # a daggen could only fail (no root CID)


@pytest.mark.parametrize("setting", [{"auto_chain": False}, {"no_dag": True}])
def test_no_auto_and_no_dag_queue_nothing(db: Database, setting: dict[str, bool]) -> None:
    attachment, packs = packed(db)
    set_prep(db, **setting)
    for pack in packs:
        assert finish(db, pack)
    assert daggen_jobs(db, attachment) == []


@pytest.mark.parametrize(
    "state", [JobState.READY, JobState.CREATED, JobState.PAUSED, JobState.ERROR]
)
def test_an_existing_daggen_job_is_never_doubled(db: Database, state: JobState) -> None:
    attachment, packs = packed(db)
    daggen = add_job(db, attachment, JobType.DAGGEN, state)
    add_directory(db, attachment, exported=False)
    for pack in packs:
        assert finish(db, pack)
    assert daggen_jobs(db, attachment) == [(daggen, state)]  # left as it was


def test_a_complete_daggen_is_requeued_when_directories_changed(db: Database) -> None:
    attachment, packs = packed(db)
    daggen = add_job(db, attachment, JobType.DAGGEN, JobState.COMPLETE)
    with db.write() as session:
        session.execute(update(Job).where(Job.id == daggen).values(attempts=2, error_message="old"))
    add_directory(db, attachment, exported=False)  # what the new pack jobs changed
    for pack in packs:
        assert finish(db, pack)
    assert daggen_jobs(db, attachment) == [(daggen, JobState.READY)]  # the same row again
    row = job(db, daggen)
    assert (row.attempts, row.error_message, row.finished_at) == (0, "", None)


def test_a_complete_daggen_with_nothing_new_stays_complete(db: Database) -> None:
    attachment, packs = packed(db)
    daggen = add_job(db, attachment, JobType.DAGGEN, JobState.COMPLETE)
    add_directory(db, attachment, exported=True)
    for pack in packs:
        assert finish(db, pack)
    assert daggen_jobs(db, attachment) == [(daggen, JobState.COMPLETE)]


def test_a_daggen_that_missed_changes_queues_itself_again(db: Database) -> None:
    """A pack job completed while the daggen ran (it was processing, so left alone): the
    daggen's own completion sees the directory it did not export and runs once more."""
    attachment, packs = packed(db)
    for pack in packs:
        assert finish(db, pack)
    [(daggen, _)] = daggen_jobs(db, attachment)
    add_directory(db, attachment, exported=False)
    assert finish(db, daggen)
    assert daggen_jobs(db, attachment) == [(daggen, JobState.READY)]
    with db.write() as session:
        session.execute(update(Directory).values(exported=True))
    assert finish(db, daggen)
    assert daggen_jobs(db, attachment) == [(daggen, JobState.COMPLETE)]


def test_concurrent_last_completions_queue_exactly_one_daggen(db: Database) -> None:
    """On PostgreSQL both completions have written their own `complete` before either decides:
    without the attachment lock each would see the other still processing and neither would
    queue the daggen. (SQLite runs one write transaction at a time: they cannot overlap.)"""
    overlap = not db.is_sqlite
    for round_number in range(5):
        attachment = make_attachment(db, name=f"prep{round_number}")
        add_job(db, attachment, JobType.SCAN, JobState.COMPLETE)
        packs = [add_job(db, attachment, JobType.PACK) for _ in range(2)]
        _complete_together(db, packs, overlap=overlap)
        assert [state for _, state in daggen_jobs(db, attachment)] == [JobState.READY]
        assert {job(db, p).state for p in packs} == {JobState.COMPLETE}


def _complete_together(db: Database, packs: list[int], *, overlap: bool) -> None:
    """Complete `packs` from one thread each, released at the same instant. With `overlap`,
    every completion transaction waits inside the hook (its own update done, uncommitted)
    until all have got there, then decides."""
    workers = [new_worker(db) for _ in packs]
    with db.write() as session:
        for pack, worker in zip(packs, workers, strict=True):
            session.execute(
                update(Job)
                .where(Job.id == pack)
                .values(state=JobState.PROCESSING, worker_id=worker)
            )
    start = threading.Barrier(len(packs), timeout=30)
    inside = threading.Barrier(len(packs), timeout=30)
    results: list[bool] = []
    errors: list[BaseException] = []

    def hook(session: object, job_id: int) -> None:
        if overlap:
            inside.wait()
        HOOKS[JobType.PACK](session, job_id)  # type: ignore[arg-type]

    def complete(pack: int, worker: str) -> None:
        try:
            start.wait()
            results.append(complete_job(db, pack, worker, hook))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [
        threading.Thread(target=complete, args=(pack, worker))
        for pack, worker in zip(packs, workers, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and results == [True] * len(packs)


@contextmanager
def _in_other_transaction(db: Database, sql: str, attachment: int) -> Iterator[None]:
    """Run `sql` (with :a = attachment) in a transaction of its own, in a thread that holds it
    open until the block ends."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write() as session:
            session.execute(text(sql), {"a": attachment})
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(30)
        yield
    finally:
        release.set()
        thread.join(30)


def _decide_without_waiting(db: Database, attachment: int) -> int | None:
    """The rule, in a transaction that fails instead of waiting for a lock over 2 s."""
    with db.write() as session:
        session.execute(text("SET LOCAL lock_timeout = '2s'"))
        return queue_daggen_if_due(session, attachment)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_rule_does_not_wait_for_a_recordings_cars_insert(db: Database) -> None:
    """A pack job completes inside its recording, which inserts a `cars` row (a KEY SHARE lock
    on the attachment, by its foreign key) before it locks directory rows: the rule's lock on
    the attachment must not wait for that, or two recordings deadlock."""
    attachment, packs = packed(db, 1)
    with db.write() as session:
        session.execute(update(Job).where(Job.id == packs[0]).values(state=JobState.COMPLETE))
    with _in_other_transaction(
        db, "SELECT id FROM source_attachments WHERE id = :a FOR KEY SHARE", attachment
    ):
        queued = _decide_without_waiting(db, attachment)
    assert queued is not None and daggen_jobs(db, attachment) == [(queued, JobState.READY)]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_daggen_row_another_transaction_holds_is_left_to_it(db: Database) -> None:
    """A complete daggen whose row is locked (its claim, recording or end is under way) is
    neither waited for nor doubled: whoever holds it leaves it running, ready or decided."""
    attachment, packs = packed(db, 1)
    daggen = add_job(db, attachment, JobType.DAGGEN, JobState.COMPLETE)
    add_directory(db, attachment, exported=False)
    with db.write() as session:
        session.execute(update(Job).where(Job.id == packs[0]).values(state=JobState.COMPLETE))
    with _in_other_transaction(
        db,
        "SELECT id FROM jobs WHERE type = 'daggen' AND attachment_id = :a FOR UPDATE",
        attachment,
    ):
        assert _decide_without_waiting(db, attachment) is None
    assert daggen_jobs(db, attachment) == [(daggen, JobState.COMPLETE)]
    # Unlocked, the same decision requeues it.
    assert _decide_without_waiting(db, attachment) == daggen
