"""Recovering the jobs of dead workers (docs/architecture.md#heartbeats-and-the-reaper, made fast and safe to run anywhere).

A worker whose last heartbeat is older than `stale_after` is dead: its `processing` jobs go back to
`ready` and its row is deleted (the FK clears worker_id on its other jobs, e.g. paused ones).
Every worker process runs this. On PostgreSQL the stale rows are locked with SKIP LOCKED, so two
reapers split the work instead of queueing; the updates are idempotent in any case.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.clock import now_expr
from dataset_worker.db.models import Worker
from dataset_worker.logs import log_event
from dataset_worker.worker.runtime.outcomes import release_jobs_of_workers

REAP_BATCH = 100

log = logging.getLogger("dataset_worker.worker")


@dataclass(frozen=True)
class ReapResult:
    """What one reaper pass did."""

    workers: int
    jobs: int


def reap_stale_workers(db: Database, stale_after: float) -> ReapResult:
    """Release the jobs of workers silent for more than `stale_after` seconds; delete them."""

    def write(session: Session) -> ReapResult:
        if not db.is_sqlite:
            # Never let a reaper hold locks for long behind a stuck statement.
            session.execute(text("SET LOCAL statement_timeout = '30s'"))
        stale = list(
            session.scalars(
                select(Worker.id)
                .where(Worker.last_heartbeat < now_expr(db, minus=stale_after))
                .order_by(Worker.id)
                .limit(REAP_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if not stale:
            return ReapResult(workers=0, jobs=0)
        jobs = release_jobs_of_workers(session, stale)
        session.execute(delete(Worker).where(Worker.id.in_(stale)))
        return ReapResult(workers=len(stale), jobs=jobs)

    return db.run_write(write)


def release_jobs_of_process(db: Database, hostname: str, pid: int) -> int:
    """Put the `processing` jobs of every worker row of (hostname, pid) back to `ready`.

    Deletes those worker rows too, so no reaper has to wait for them to turn stale.
    Returns the number of jobs released. Call it only once the process is surely dead.
    """

    def write(session: Session) -> int:
        ids = list(
            session.scalars(
                select(Worker.id)
                .where(Worker.hostname == hostname, Worker.pid == pid)
                .with_for_update()
            )
        )
        released = release_jobs_of_workers(session, ids)
        if ids:
            session.execute(delete(Worker).where(Worker.id.in_(ids)))
        return released

    return db.run_write(write)


def run_reaper(db: Database, stale_after: float, interval: float, stop: threading.Event) -> None:
    """Reap stale workers now, then every `interval` until `stop` (any process may run this)."""
    while True:
        try:
            result = reap_stale_workers(db, stale_after)
        except Exception as exc:
            log_event(log, "reaper.failed", logging.WARNING, error=str(exc))
        else:
            if result.workers:
                log_event(log, "reaper.reaped", workers=result.workers, jobs=result.jobs)
        if stop.wait(interval):
            return
