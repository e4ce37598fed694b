"""The run loop in process, with job bodies passed as a handler table."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping

import pytest
from sqlalchemy import update

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType
from dataset_worker.db.queue import complete_job
from dataset_worker.worker.runtime.config import WorkerConfig
from dataset_worker.worker.runtime.context import Handler, JobCancelled, JobContext
from dataset_worker.worker.runtime.monitor import JobMonitor
from dataset_worker.worker.runtime.process import EXIT_ERROR, EXIT_OK, WorkerProcess
from dataset_worker.worker.runtime.thread import ThreadResult, WorkerThread
from tests.integration.worker_support import (
    add_job,
    add_jobs,
    job,
    make_attachment,
    new_worker,
    set_state,
    worker_ids,
)
from tests.support.wait import wait_until

FAST = WorkerConfig(min_interval=0.01, max_interval=0.02, exit_on_complete=True)


@pytest.fixture
def monitor(db: Database) -> Iterator[JobMonitor]:
    monitor = JobMonitor(db, interval=0.02)
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,))
    thread.start()
    yield monitor
    stop.set()
    thread.join(5)


def make_thread(
    db: Database,
    monitor: JobMonitor,
    handlers: Mapping[JobType, Handler],
    config: WorkerConfig = FAST,
    shutdown: threading.Event | None = None,
) -> WorkerThread:
    return WorkerThread(
        db, config, handlers, new_worker(db), shutdown or threading.Event(), monitor
    )


def run_in_background(worker: WorkerThread) -> tuple[threading.Thread, list[ThreadResult]]:
    results: list[ThreadResult] = []
    thread = threading.Thread(target=lambda: results.append(worker.run()))
    thread.start()
    return thread, results


def block_until_cancelled(seen: list[JobCancelled]) -> Handler:
    def handler(ctx: JobContext) -> None:
        while True:
            try:
                ctx.check_cancelled()
            except JobCancelled as exc:
                seen.append(exc)
                raise
            time.sleep(0.005)

    return handler


def test_successful_jobs_complete_in_priority_order(db: Database, monitor: JobMonitor) -> None:
    attachment = make_attachment(db)
    pack = add_job(db, attachment, JobType.PACK)
    scan = add_job(db, attachment, JobType.SCAN)
    seen: list[tuple[int, JobType, int, str]] = []

    def record(ctx: JobContext) -> None:
        seen.append((ctx.job_id, ctx.job_type, ctx.attachment_id, ctx.worker_id))
        assert job(db, ctx.job_id).state == JobState.PROCESSING

    worker = make_thread(db, monitor, {JobType.SCAN: record, JobType.PACK: record})
    assert worker.run() == ThreadResult(worker.worker_id)
    me = worker.worker_id
    assert seen == [(scan, JobType.SCAN, attachment, me), (pack, JobType.PACK, attachment, me)]
    assert {job(db, j).state for j in (scan, pack)} == {JobState.COMPLETE}


def test_a_raising_handler_marks_the_job_error(db: Database, monitor: JobMonitor) -> None:
    attachment = make_attachment(db)
    failing, nameless, fine = add_jobs(db, attachment, JobType.PACK, 3)

    def handler(ctx: JobContext) -> None:
        if ctx.job_id == failing:
            raise ValueError(f"source file a/b.txt changed since the scan (job {ctx.job_id})")
        if ctx.job_id == nameless:
            raise KeyError

    worker = make_thread(db, monitor, {JobType.PACK: handler})
    assert worker.run().error is None  # without exit-on-error errors only slow the thread down
    row = job(db, failing)
    assert row.state == JobState.ERROR and row.worker_id is None and row.finished_at is not None
    assert row.error_message == f"source file a/b.txt changed since the scan (job {failing})"
    assert "ValueError" in row.error_stack_trace and "Traceback" in row.error_stack_trace
    assert job(db, nameless).error_message == "KeyError"
    assert job(db, fine).state == JobState.COMPLETE


def test_exit_on_error_returns_the_first_error(db: Database, monitor: JobMonitor) -> None:
    attachment = make_attachment(db)
    first, second = add_jobs(db, attachment, JobType.PACK, 2)

    def handler(ctx: JobContext) -> None:
        raise RuntimeError("boom")

    config = WorkerConfig(min_interval=0.01, max_interval=0.02, exit_on_error=True)
    result = make_thread(db, monitor, {JobType.PACK: handler}, config).run()
    assert isinstance(result.error, RuntimeError) and str(result.error) == "boom"
    assert job(db, first).state == JobState.ERROR
    assert job(db, second).state == JobState.READY


def test_a_type_without_handler_fails_the_job(db: Database, monitor: JobMonitor) -> None:
    job_id = add_job(db, make_attachment(db), JobType.DAGGEN)
    make_thread(db, monitor, {}).run()
    assert job(db, job_id).state == JobState.ERROR
    assert job(db, job_id).error_message == "this worker has no handler for daggen jobs"


def test_a_paused_job_is_stopped_and_left_paused(db: Database, monitor: JobMonitor) -> None:
    attachment = make_attachment(db)
    paused, after = add_jobs(db, attachment, JobType.PACK, 2)
    seen: list[JobCancelled] = []
    blocking = block_until_cancelled(seen)
    done: list[int] = []

    def handler(ctx: JobContext) -> None:
        if ctx.job_id == paused:
            blocking(ctx)
        done.append(ctx.job_id)

    worker = make_thread(db, monitor, {JobType.PACK: handler})
    thread, results = run_in_background(worker)
    wait_until(lambda: job(db, paused).state == JobState.PROCESSING, what="job claimed")
    set_state(db, paused, JobState.PAUSED)
    thread.join(10)
    assert results == [ThreadResult(worker.worker_id)]
    assert [exc.reason for exc in seen] == ["job was paused"]
    row = job(db, paused)
    assert (row.state, row.worker_id) == (JobState.PAUSED, worker.worker_id)
    assert done == [after]


def test_a_job_taken_over_by_another_worker_is_stopped(db: Database, monitor: JobMonitor) -> None:
    job_id = add_job(db, make_attachment(db), JobType.SCAN)
    seen: list[JobCancelled] = []
    worker = make_thread(db, monitor, {JobType.SCAN: block_until_cancelled(seen)})
    thread, _ = run_in_background(worker)
    wait_until(lambda: job(db, job_id).state == JobState.PROCESSING, what="job claimed")
    # As if a reaper had released it and someone else claimed it, in one step: released
    # alone, the job could be reclaimed by this very thread first.
    thief = new_worker(db)
    with db.write() as session:
        session.execute(update(Job).where(Job.id == job_id).values(worker_id=thief))
    wait_until(lambda: seen, what="the job stopped")
    assert len(seen) == 1 and seen[0].reason.startswith("job was taken over")
    assert (job(db, job_id).state, job(db, job_id).worker_id) == (JobState.PROCESSING, thief)
    # With exit-on-complete the thread waits while the job is processing elsewhere (its new
    # owner may die and leave it to be reclaimed); it ends once the thief completes it.
    assert thread.is_alive()
    assert complete_job(db, job_id, thief)
    thread.join(10)
    assert not thread.is_alive()


def test_shutdown_puts_the_job_back_to_ready(db: Database, monitor: JobMonitor) -> None:
    job_id = add_job(db, make_attachment(db), JobType.PACK)
    seen: list[JobCancelled] = []
    shutdown = threading.Event()
    config = WorkerConfig(min_interval=0.01, max_interval=0.02)
    worker = make_thread(db, monitor, {JobType.PACK: block_until_cancelled(seen)}, config, shutdown)
    thread, results = run_in_background(worker)
    wait_until(lambda: job(db, job_id).state == JobState.PROCESSING, what="job claimed")
    shutdown.set()
    thread.join(10)
    assert results == [ThreadResult(worker.worker_id)]
    assert [exc.reason for exc in seen] == ["worker is shutting down"]
    row = job(db, job_id)
    assert (row.state, row.worker_id, row.error_message) == (JobState.READY, None, "")


def test_a_job_that_finishes_during_shutdown_is_complete(db: Database, monitor: JobMonitor) -> None:
    job_id = add_job(db, make_attachment(db), JobType.PACK)
    shutdown = threading.Event()

    def finishes_anyway(ctx: JobContext) -> None:
        shutdown.set()

    make_thread(db, monitor, {JobType.PACK: finishes_anyway}, FAST, shutdown).run()
    assert job(db, job_id).state == JobState.COMPLETE


def test_idle_sleep_is_interrupted_by_shutdown(
    db: Database, monitor: JobMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dataset_worker.worker")
    shutdown = threading.Event()
    config = WorkerConfig(min_interval=60, max_interval=120)
    thread, results = run_in_background(make_thread(db, monitor, {}, config, shutdown))
    wait_until(lambda: any(r.msg == "worker.idle" for r in caplog.records), what="idle")
    shutdown.set()
    thread.join(30)  # half the idle interval: only an interrupted sleep ends in time
    assert not thread.is_alive()
    assert len(results) == 1 and results[0].error is None


def test_idle_backoff_doubles_up_to_the_maximum(
    db: Database, monitor: JobMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dataset_worker.worker")
    shutdown = threading.Event()
    config = WorkerConfig(min_interval=0.01, max_interval=0.04)
    thread, _ = run_in_background(make_thread(db, monitor, {}, config, shutdown))

    def sleeps() -> list[float]:
        return [r.sleep for r in caplog.records if r.msg == "worker.idle"]  # type: ignore[attr-defined]

    wait_until(lambda: len(sleeps()) >= 5, what="five idle polls")
    shutdown.set()
    thread.join(5)
    assert sleeps()[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]


def test_a_pack_only_thread_waits_for_a_running_scan_and_packs_what_it_queues(
    db: Database, monitor: JobMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    """`prepare`'s helpers: pack only, exit on complete, started while the scan runs."""
    caplog.set_level(logging.DEBUG, logger="dataset_worker.worker")
    attachment = make_attachment(db)
    scan = add_job(db, attachment, JobType.SCAN, JobState.PROCESSING, new_worker(db))
    handled: list[int] = []
    config = WorkerConfig(
        enable_scan=False, enable_dag=False, min_interval=60, max_interval=120,
        exit_on_complete=True,
    )  # fmt: skip
    packer = make_thread(
        db, monitor, {JobType.PACK: lambda ctx: handled.append(ctx.job_id)}, config
    )
    thread, results = run_in_background(packer)

    def sleeps() -> list[float]:
        return [r.sleep for r in caplog.records if r.msg == "worker.idle"]  # type: ignore[attr-defined]

    wait_until(lambda: len(sleeps()) >= 3, what="three waiting polls")
    assert thread.is_alive()  # the running scan may still queue pack jobs
    assert max(sleeps()) <= 1.0  # a waiting poll, not the 60 s idle backoff
    pack = add_job(db, attachment, JobType.PACK)
    set_state(db, scan, JobState.COMPLETE)
    thread.join(30)  # well under the idle backoff: only the waiting poll ends it in time
    assert not thread.is_alive()
    assert handled == [pack] and results[0].error is None


def test_process_exits_0_when_all_threads_are_done(db: Database) -> None:
    ids = add_jobs(db, make_attachment(db), JobType.PACK, 6)
    handled: list[int] = []
    config = WorkerConfig(
        concurrency=3, min_interval=0.01, max_interval=0.02, exit_on_complete=True
    )
    code = WorkerProcess(db, config, {JobType.PACK: lambda ctx: handled.append(ctx.job_id)}).run()
    assert code == EXIT_OK
    assert sorted(handled) == ids
    assert {job(db, j).state for j in ids} == {JobState.COMPLETE}
    assert worker_ids(db) == set()


def test_process_exit_on_error_stops_every_thread(db: Database) -> None:
    attachment = make_attachment(db)
    failing = add_job(db, attachment, JobType.SCAN)
    running = add_job(db, attachment, JobType.PACK)
    seen: list[JobCancelled] = []
    blocking = block_until_cancelled(seen)

    def fail_once_pack_runs(ctx: JobContext) -> None:
        wait_until(lambda: job(db, running).state == JobState.PROCESSING, what="pack running")
        raise RuntimeError("scan failed")

    config = WorkerConfig(concurrency=2, min_interval=0.01, max_interval=0.02, exit_on_error=True)
    handlers = {JobType.SCAN: fail_once_pack_runs, JobType.PACK: blocking}
    assert WorkerProcess(db, config, handlers).run() == EXIT_ERROR
    assert job(db, failing).state == JobState.ERROR
    assert (job(db, running).state, job(db, running).worker_id) == (JobState.READY, None)
    assert [exc.reason for exc in seen] == ["worker is shutting down"]
    assert worker_ids(db) == set()


def test_a_body_that_finishes_in_its_own_transaction_runs_the_job_it_claimed_ahead(
    db: Database, monitor: JobMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dataset_worker.worker")
    first, second = add_jobs(db, make_attachment(db), JobType.PACK, 2)
    during: list[tuple[JobState, str | None]] = []
    hooked: list[int] = []

    def handler(ctx: JobContext) -> None:
        ctx.db.run_write(ctx.finish)  # the body's last transaction
        if ctx.job_id == first:
            row = job(db, second)
            during.append((row.state, row.worker_id))

    worker = WorkerThread(
        db,
        FAST,
        {JobType.PACK: handler},
        new_worker(db),
        threading.Event(),
        monitor,
        completion_hooks={JobType.PACK: lambda _session, done: hooked.append(done)},
    )
    assert worker.run() == ThreadResult(worker.worker_id)
    # The second job was this thread's before the first job's body returned.
    assert during == [(JobState.PROCESSING, worker.worker_id)]
    assert {job(db, j).state for j in (first, second)} == {JobState.COMPLETE}
    # Completed once each, by the body: the thread wrote no completion of its own.
    assert hooked == [first, second]
    messages = [r.msg for r in caplog.records]
    assert messages.count("job.complete") == 2 and "job.not_owned" not in messages


def test_a_job_claimed_ahead_goes_back_when_the_thread_stops(
    db: Database, monitor: JobMonitor
) -> None:
    first, second = add_jobs(db, make_attachment(db), JobType.PACK, 2)
    shutdown = threading.Event()

    def handler(ctx: JobContext) -> None:
        ctx.db.run_write(ctx.finish)
        assert job(db, second).state == JobState.PROCESSING
        shutdown.set()  # the process stops before the thread starts the second job

    make_thread(db, monitor, {JobType.PACK: handler}, shutdown=shutdown).run()
    assert job(db, first).state == JobState.COMPLETE
    row = job(db, second)
    assert row.state == JobState.READY and row.worker_id is None


def test_an_error_after_the_handover_commits_leaves_the_job_complete(
    db: Database, monitor: JobMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dataset_worker.worker")
    first, second = add_jobs(db, make_attachment(db), JobType.PACK, 2)

    def handler(ctx: JobContext) -> None:
        ctx.db.run_write(ctx.finish)
        if ctx.job_id == first:
            raise OSError("best-effort clean-up failed")

    make_thread(db, monitor, {JobType.PACK: handler}).run()
    assert {job(db, j).state for j in (first, second)} == {JobState.COMPLETE}
    late = [r for r in caplog.records if r.msg == "job.failed_after_complete"]
    assert len(late) == 1 and late[0].__dict__.get("job") == first


def test_a_handover_that_rolls_back_does_not_count(db: Database, monitor: JobMonitor) -> None:
    first, second = add_jobs(db, make_attachment(db), JobType.PACK, 2)

    def handler(ctx: JobContext) -> None:
        if ctx.job_id == first:
            with ctx.db.write() as session:
                ctx.finish(session)
                raise ValueError("the recording failed")
        ctx.db.run_write(ctx.finish)

    make_thread(db, monitor, {JobType.PACK: handler}).run()
    row = job(db, first)
    assert row.state == JobState.ERROR and row.error_message == "the recording failed"
    assert job(db, second).state == JobState.COMPLETE
