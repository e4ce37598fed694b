"""Background loops of a worker process: heartbeats and the reaper (reference spec §3.6)."""

from __future__ import annotations

import logging
import threading

from dataset_worker.db import Database
from dataset_worker.logs import log_event
from dataset_worker.worker.reaper import reap_stale_workers
from dataset_worker.worker.registry import LiveWorkers

log = logging.getLogger("dataset_worker.worker")


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
