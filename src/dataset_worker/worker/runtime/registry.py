"""The `workers` rows: one per worker thread, kept alive by heartbeats (docs/architecture.md#heartbeats-and-the-reaper)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.clock import now_expr as now_expr  # re-exported
from dataset_worker.db.models import Worker
from dataset_worker.db.queue import release_jobs_of_workers
from dataset_worker.logs import log_event

WORKER_TYPE = "dataset_worker"

log = logging.getLogger("dataset_worker.worker")


def register_workers(db: Database, worker_ids: Sequence[str]) -> None:
    """Insert a fresh row per worker id (hostname, pid, last_heartbeat = now)."""

    def write(session: Session) -> None:
        _insert(session, db, worker_ids)

    db.run_write(write)


def heartbeat(db: Database, worker_ids: Sequence[str]) -> int:
    """Refresh last_heartbeat of these rows; re-insert any that a reaper deleted.

    Returns how many rows had to be re-inserted (0 normally).
    """

    def write(session: Session) -> int:
        session.execute(
            update(Worker)
            .where(Worker.id.in_(worker_ids))
            .values(last_heartbeat=now_expr(db))
            .execution_options(synchronize_session=False)
        )
        present = set(session.scalars(select(Worker.id).where(Worker.id.in_(worker_ids))))
        missing = [worker_id for worker_id in worker_ids if worker_id not in present]
        _insert(session, db, missing)
        return len(missing)

    return db.run_write(write)


def unregister_workers(db: Database, worker_ids: Sequence[str]) -> int:
    """Delete these rows; their `processing` jobs go back to `ready` first.

    Returns how many jobs were released. The FK clears worker_id on their other jobs.
    """

    def write(session: Session) -> int:
        released = release_jobs_of_workers(session, list(worker_ids))
        session.execute(delete(Worker).where(Worker.id.in_(worker_ids)))
        return released

    return db.run_write(write)


def _insert(session: Session, db: Database, worker_ids: Sequence[str]) -> None:
    if not worker_ids:
        return
    hostname, pid = socket.gethostname(), os.getpid()
    # The same clock as heartbeats and the reaper (the server's on PostgreSQL).
    now = now_expr(db)
    session.execute(
        insert(Worker).values(
            [
                {
                    "id": worker_id,
                    "last_heartbeat": now,
                    "hostname": hostname,
                    "type": WORKER_TYPE,
                    "pid": pid,
                    "started_at": now,
                }
                for worker_id in worker_ids
            ]
        )
    )


class LiveWorkers:
    """The worker rows of this process that are still alive.

    Heartbeats and thread exits share one lock, so a heartbeat can never re-insert the row of a
    thread that has just deleted it.
    """

    def __init__(self, db: Database, worker_ids: Sequence[str]) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._ids = list(worker_ids)

    @property
    def ids(self) -> list[str]:
        """Ids of the threads that have not retired yet."""
        with self._lock:
            return list(self._ids)

    def beat(self) -> int:
        """Heartbeat every live row; returns how many had to be re-inserted."""
        with self._lock:
            return heartbeat(self._db, self._ids) if self._ids else 0

    def retire(self, worker_id: str) -> None:
        """Delete one thread's row for good (at thread exit)."""
        with self._lock:
            if worker_id in self._ids:
                self._ids.remove(worker_id)
            unregister_workers(self._db, [worker_id])


def run_heartbeat(live: LiveWorkers, interval: float, stop: threading.Event) -> None:
    """Refresh the rows of every live thread of this process each `interval` until `stop`.

    Failures are logged and retried next time: a worker keeps working while the DB hiccups.
    """
    while not stop.wait(interval):
        try:
            restored = live.beat()
        except Exception as exc:
            log_event(log, "heartbeat.failed", logging.WARNING, error=str(exc))
            continue
        if restored:
            log_event(log, "heartbeat.reregistered", logging.WARNING, workers=restored)
