"""What a job handler gets from the runtime: the job's identity, the database, and cancellation.

Handlers (`worker.scan.run_scan`, `worker.pack.run_pack`, `worker.daggen.run_daggen`) take one
`JobContext`. They return normally on success and raise on failure; long loops call
`ctx.check_cancelled()` often (per file, per block batch) so that a pause or a process shutdown
stops them promptly. `JobCancelled` must be allowed to propagate: the runtime then puts the job
back to `ready` (shutdown) or leaves the row alone (paused, or taken over), never `error`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dataset_worker.db import Database
from dataset_worker.db.models import JobType

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class JobCancelled(Exception):
    """The job must stop now: the process is shutting down, or the job was paused."""

    def __init__(self, job_id: int, reason: str) -> None:
        super().__init__(f"job {job_id} cancelled: {reason}")
        self.job_id = job_id
        self.reason = reason


class StopSignal:
    """A one-way flag with a reason, set from another thread (the state monitor)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        """Raise the flag; the first reason wins."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        """True once `set` was called."""
        return self._event.is_set()


@dataclass
class JobContext:
    """One claimed job as a handler sees it.

    `shutdown` is the process-wide stop event; `stop` is set by the state monitor when this job's
    row turns `paused` (or stops belonging to this worker). Handlers read them only through
    `cancelled` / `check_cancelled()`. `read_ahead` tells a pack job whether to read its chunks
    ahead in a second thread (the process turns it off when its pack jobs fill every core).
    """

    db: Database
    job_id: int
    job_type: JobType
    attachment_id: int
    worker_id: str
    logger: logging.Logger
    shutdown: threading.Event = field(default_factory=threading.Event)
    stop: StopSignal = field(default_factory=StopSignal)
    read_ahead: bool = True
    # Wakes the process's idle threads: a scan calls it after a batch that queued pack jobs.
    queued: Callable[[], None] = field(default=lambda: None)
    # Marks the job complete and claims the thread's next one inside the body's own last write
    # transaction (db/queue/handover.py); the runtime then writes no completion of its own. A
    # body calls it in that transaction once the job's work is written, lets the transaction's
    # failure propagate, and does nothing after the commit that could fail the job. Outside a
    # worker thread, a no-op.
    finish: Callable[[Session], None] = field(default=lambda _session: None)

    @property
    def cancelled(self) -> bool:
        """True once the job should stop (shutdown or pause)."""
        return self.shutdown.is_set() or self.stop.is_set()

    def check_cancelled(self) -> None:
        """Raise `JobCancelled` if the process is shutting down or this job was paused."""
        if self.shutdown.is_set():
            raise JobCancelled(self.job_id, "worker is shutting down")
        if self.stop.is_set():
            raise JobCancelled(self.job_id, self.stop.reason)


Handler = Callable[[JobContext], None]
"""A job body: return = success, raise = error, `JobCancelled` = stopped from outside."""
