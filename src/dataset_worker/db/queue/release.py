"""processing → ready for the jobs of dead workers: stale heartbeats, gone processes.

See docs/architecture.md#heartbeats-and-the-reaper. A job owned by a worker row that is deleted
here goes back to `ready` in the same transaction; the foreign key clears worker_id on its other
jobs (paused ones). No attempt is counted: the job did not fail. The updates are idempotent, so
any number of reapers may run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from dataset_worker.db.clock import now_expr
from dataset_worker.db.engine import Database
from dataset_worker.db.models import Job, JobState, Worker

REAP_BATCH = 100

ProcessGone = Callable[[int, datetime | None], bool]
"""`gone(pid, registered_at)`: the process of a worker row of this host is surely dead."""


@dataclass(frozen=True)
class ReapResult:
    """What one reaper pass did."""

    workers: int
    jobs: int


def release_jobs_of_workers(session: Session, worker_ids: Sequence[str]) -> int:
    """processing → ready for every job owned by these workers; returns how many.

    SQL: `UPDATE jobs SET state='ready', worker_id=NULL, started_at=NULL, finished_at=NULL
    WHERE worker_id IN (:ids) AND state='processing'`, in the caller's write transaction (which
    holds the workers rows, or SQLite's write lock).
    """
    if not worker_ids:
        return 0
    result = session.execute(
        update(Job)
        .where(Job.worker_id.in_(list(worker_ids)), Job.state == JobState.PROCESSING)
        .values(state=JobState.READY, worker_id=None, started_at=None, finished_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def reap_stale_workers(
    db: Database,
    stale_after: float,
    gone: ProcessGone | None = None,
    hostname: str | None = None,
) -> ReapResult:
    """Release the jobs of dead workers and delete their rows: rows silent for more than
    `stale_after` seconds, and, with `gone`, rows of this host (`hostname`, default this
    machine's) whose process `gone(pid, started_at)` says is dead, however fresh their heartbeat.

    SQL: `SELECT id FROM workers WHERE last_heartbeat < now - :stale ORDER BY id LIMIT 100 FOR
    UPDATE SKIP LOCKED` (and the same for `hostname = :host AND pid <> :own pid`), then
    `release_jobs_of_workers` and `DELETE FROM workers WHERE id IN (…)`. Locking: on PostgreSQL
    the worker rows are locked with SKIP LOCKED, so several reapers split the work, under a 30 s
    statement timeout; SQLite holds its write lock.
    """
    host = hostname if hostname is not None else socket.gethostname()

    def write(session: Session) -> ReapResult:
        if not db.is_sqlite:
            # Never let a reaper hold locks for long behind a stuck statement.
            session.execute(text("SET LOCAL statement_timeout = '30s'"))
        dead = list(
            session.scalars(
                select(Worker.id)
                .where(Worker.last_heartbeat < now_expr(db, minus=stale_after))
                .order_by(Worker.id)
                .limit(REAP_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if gone is not None:
            dead += _gone_here(session, host, gone, exclude=set(dead))
        if not dead:
            return ReapResult(workers=0, jobs=0)
        jobs = release_jobs_of_workers(session, dead)
        session.execute(delete(Worker).where(Worker.id.in_(dead)))
        return ReapResult(workers=len(dead), jobs=jobs)

    return db.run_write(write)


def _gone_here(session: Session, host: str, gone: ProcessGone, exclude: set[str]) -> list[str]:
    """Worker rows of this host whose process is dead (never this process's own rows)."""
    rows = session.execute(
        select(Worker.id, Worker.pid, Worker.started_at)
        .where(Worker.hostname == host, Worker.pid != os.getpid())
        .order_by(Worker.id)
        .limit(REAP_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    return [
        row.id
        for row in rows
        if row.id not in exclude and row.pid is not None and gone(row.pid, row.started_at)
    ]


def release_jobs_of_process(db: Database, hostname: str, pid: int) -> int:
    """processing → ready for the jobs of every worker row of (hostname, pid), and delete those
    rows, so no reaper has to wait for them to turn stale. Call it only once the process is
    surely dead (the admin server, after it killed its worker). Returns the jobs released.

    SQL: `SELECT id FROM workers WHERE hostname=:h AND pid=:p FOR UPDATE`, then
    `release_jobs_of_workers` and `DELETE FROM workers WHERE id IN (…)`. Locking: the worker
    rows (PostgreSQL); SQLite's write lock.
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
