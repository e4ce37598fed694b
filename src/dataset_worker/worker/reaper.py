"""Recovering the jobs of dead workers (reference spec §3.6, made fast and safe to run anywhere).

A worker whose last heartbeat is older than `stale_after` is dead: its `processing` jobs go back to
`ready` and its row is deleted (the FK clears worker_id on its other jobs, e.g. paused ones).
Every worker process runs this. On PostgreSQL the stale rows are locked with SKIP LOCKED, so two
reapers split the work instead of queueing; the updates are idempotent in any case.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import Worker
from dataset_worker.worker.lifecycle import release_jobs_of_workers
from dataset_worker.worker.registry import now_expr

REAP_BATCH = 100


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
