"""Retries in the real runtime (WorkerProcess in process, with test job bodies), on SQLite and
PostgreSQL: transient failures come back after their backoff, permanent ones fail at once, the
attempts budget ends in `error`, and every job keeps which worker and host ran it."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from dataset_worker.db import Database
from dataset_worker.db.clock import database_now
from dataset_worker.db.models import Job, JobState, JobType
from dataset_worker.db.queue import claim_next_job, seconds_until_retry
from dataset_worker.worker.runtime.config import WorkerConfig
from dataset_worker.worker.runtime.context import JobContext
from dataset_worker.worker.runtime.process import EXIT_ERROR, EXIT_OK, WorkerProcess
from dataset_worker.worker.runtime.retry import TransientError
from tests.integration.worker_support import add_job, job, make_attachment, new_worker
from tests.support.wait import wait_until

BASE = 0.2  # the first retry waits 0.1-0.2 s, the second 0.2-0.4 s


def config(**changes: object) -> WorkerConfig:
    values: dict[str, object] = dict(
        min_interval=0.01,
        max_interval=0.05,
        exit_on_complete=True,  # the threads must still wait for the retries that are due
        retry_base=BASE,
        retry_cap=10 * BASE,
    )
    values.update(changes)
    return WorkerConfig(**values)  # type: ignore[arg-type]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass
class Attempt:
    """What a handler saw when it ran: the database time and the job's retry bookkeeping."""

    now: datetime
    due: datetime | None
    attempts: int
    last_worker: str | None
    last_host: str | None


def observe(ctx: JobContext) -> Attempt:
    with ctx.db.read() as session:
        due, attempts, worker, host = session.execute(
            select(
                Job.next_attempt_at, Job.attempts, Job.last_worker_id, Job.last_worker_host
            ).where(Job.id == ctx.job_id)
        ).one()
        now = database_now(ctx.db, session)
    return Attempt(_aware(now), _aware(due) if due else None, attempts, worker, host)


def run_process(db: Database, handler: object, **changes: object) -> int:
    process = WorkerProcess(db, config(**changes), {JobType.PACK: handler})  # type: ignore[dict-item]
    return process.run()


def test_transient_failures_are_retried_after_their_backoff(db: Database) -> None:
    job_id = add_job(db, make_attachment(db), JobType.PACK)
    attempts: list[Attempt] = []

    def flaky(ctx: JobContext) -> None:
        attempts.append(observe(ctx))
        if len(attempts) <= 2:
            raise ConnectionResetError(104, f"Connection reset by peer (try {len(attempts)})")

    started = time.monotonic()
    assert run_process(db, flaky) == EXIT_OK
    row = job(db, job_id)
    assert (row.state, row.attempts) == (JobState.COMPLETE, 2)
    assert row.error_message == "" and row.worker_id is None
    assert len(attempts) == 3
    # Each retry ran no earlier than its next_attempt_at, on the database's clock.
    first, second, third = attempts
    assert first.due is None and first.attempts == 0
    assert second.due is not None and second.now >= second.due and second.attempts == 1
    assert third.due is not None and third.now >= third.due and third.attempts == 2
    # The waits grow: at least half a step each (jitter), 0.1 s then 0.2 s.
    assert third.due - second.due >= timedelta(seconds=BASE)
    assert time.monotonic() - started >= BASE / 2 + BASE
    # Every attempt recorded its worker and host when it was claimed.
    assert {a.last_host for a in attempts} == {socket.gethostname()}
    assert row.last_worker_id == third.last_worker and row.last_worker_host == socket.gethostname()


def test_a_waiting_retry_is_not_claimed_before_it_is_due(db: Database) -> None:
    attachment = make_attachment(db)
    later, now = add_job(db, attachment, JobType.PACK), add_job(db, attachment, JobType.PACK)
    with db.write() as session:
        session.execute(
            update(Job)
            .where(Job.id == later)
            .values(attempts=1, next_attempt_at=datetime.now(UTC) + timedelta(hours=1))
        )
    me = new_worker(db)
    waiting = seconds_until_retry(db, [JobType.PACK])
    assert waiting is not None and 3500 < waiting <= 3600
    claimed = claim_next_job(db, me, [JobType.PACK])
    assert claimed is not None and claimed.id == now  # the lower id waits; the next one runs
    assert claim_next_job(db, me, [JobType.PACK]) is None
    with db.write() as session:
        session.execute(
            update(Job)
            .where(Job.id == later)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert seconds_until_retry(db, [JobType.PACK]) == 0.0
    claimed = claim_next_job(db, me, [JobType.PACK], hostname="host-x")
    assert claimed is not None and claimed.id == later
    row = job(db, later)
    assert (row.state, row.last_worker_id, row.last_worker_host) == (
        JobState.PROCESSING,
        me,
        "host-x",
    )
    assert seconds_until_retry(db, [JobType.PACK]) is None


def test_a_permanent_failure_is_an_error_after_one_attempt(db: Database) -> None:
    job_id = add_job(db, make_attachment(db), JobType.PACK)
    calls: list[int] = []

    def changed(ctx: JobContext) -> None:
        calls.append(ctx.job_id)
        raise ValueError(f"source file a.bin changed since the scan (job {ctx.job_id})")

    assert run_process(db, changed) == EXIT_ERROR  # exit-on-complete, and a job failed
    row = job(db, job_id)
    assert (row.state, row.attempts, row.next_attempt_at) == (JobState.ERROR, 1, None)
    assert row.error_message == f"source file a.bin changed since the scan (job {job_id})"
    assert "ValueError" in row.error_stack_trace
    assert calls == [job_id]
    assert row.last_worker_host == socket.gethostname() and row.last_worker_id is not None


def test_the_last_allowed_attempt_ends_in_error(db: Database) -> None:
    job_id = add_job(db, make_attachment(db), JobType.PACK)
    calls: list[Attempt] = []

    def always_busy(ctx: JobContext) -> None:
        calls.append(observe(ctx))
        raise TransientError("503 SlowDown: reduce your request rate")

    assert run_process(db, always_busy, max_attempts=3) == EXIT_ERROR
    row = job(db, job_id)
    assert (row.state, row.attempts) == (JobState.ERROR, 3)
    assert row.error_message == "503 SlowDown: reduce your request rate"
    assert [c.attempts for c in calls] == [0, 1, 2]


def test_a_retry_waiting_in_the_queue_shows_its_last_error(db: Database) -> None:
    """A long backoff: the thread gives up waiting (stopped), the row keeps the retry's state."""
    job_id = add_job(db, make_attachment(db), JobType.PACK)

    def timeout(ctx: JobContext) -> None:
        raise TimeoutError("read timed out")

    process = WorkerProcess(
        db,
        config(exit_on_complete=False, retry_base=3600.0, retry_cap=3600.0),
        {JobType.PACK: timeout},
    )

    def stop_when_retrying() -> None:
        try:
            wait_until(lambda: job(db, job_id).attempts > 0, 30, "the first failed attempt")
        finally:
            process.stop()

    stopper = threading.Thread(target=stop_when_retrying)
    stopper.start()
    process.run()
    stopper.join()
    row = job(db, job_id)
    assert (row.state, row.attempts, row.error_message) == (JobState.READY, 1, "read timed out")
    assert row.next_attempt_at is not None
    due = _aware(row.next_attempt_at) - datetime.now(UTC)
    assert timedelta(minutes=29) < due <= timedelta(hours=1)
    assert row.worker_id is None and row.last_worker_id is not None
