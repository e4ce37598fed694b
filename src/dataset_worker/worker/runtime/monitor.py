"""The state monitor: stops in-flight jobs whose row stopped being ours (docs/architecture.md#pause-monitor).

One per process. Every `interval` seconds (1 s; Singularity: 5 s) it reads the state and owner of
the in-flight jobs — a primary-key lookup — and signals a job's `StopSignal` when the row is
`paused`, owned by another worker (reaped and reclaimed), no longer `processing`, or gone. The
thread running that job then writes nothing to the row and moves on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState
from dataset_worker.logs import log_event
from dataset_worker.worker.runtime.context import StopSignal

log = logging.getLogger("dataset_worker.worker")


@dataclass(frozen=True)
class _InFlight:
    worker_id: str
    stop: StopSignal


class JobMonitor:
    """Registry of in-flight jobs plus the loop that checks them."""

    def __init__(self, db: Database, interval: float = 1.0) -> None:
        self._db = db
        self._interval = interval
        self._lock = threading.Lock()
        self._jobs: dict[int, _InFlight] = {}

    def register(self, job_id: int, worker_id: str) -> StopSignal:
        """Watch a freshly claimed job; the returned signal is set if it must stop."""
        stop = StopSignal()
        with self._lock:
            self._jobs[job_id] = _InFlight(worker_id, stop)
        return stop

    def unregister(self, job_id: int) -> None:
        """Stop watching a job (its handler returned)."""
        with self._lock:
            self._jobs.pop(job_id, None)

    def check_once(self) -> int:
        """Check every in-flight job once; returns how many were told to stop."""
        with self._lock:
            jobs = dict(self._jobs)
        if not jobs:
            return 0
        with self._db.read() as session:
            rows = {
                row.id: row
                for row in session.execute(
                    select(Job.id, Job.state, Job.worker_id).where(Job.id.in_(list(jobs)))
                )
            }
        stopped = 0
        for job_id, flight in jobs.items():
            row = rows.get(job_id)
            if row is None:
                reason = "job was deleted"
            elif row.state == JobState.PAUSED:
                reason = "job was paused"
            elif row.state != JobState.PROCESSING or row.worker_id != flight.worker_id:
                reason = f"job was taken over (state {row.state}, owner {row.worker_id})"
            else:
                continue
            if not flight.stop.is_set():
                log_event(log, "job.stopping", job=job_id, worker=flight.worker_id, reason=reason)
                flight.stop.set(reason)
                stopped += 1
        return stopped

    def run(self, stop: threading.Event) -> None:
        """Check every `interval` seconds until `stop` is set; DB errors are logged, not fatal."""
        while not stop.wait(self._interval):
            try:
                self.check_once()
            except Exception as exc:
                log_event(log, "monitor.failed", logging.WARNING, error=str(exc))
