"""Idle worker threads wake when work is queued, not at their next poll (docs/architecture.md#worker-thread-loop).

`Doorbell` is what idle threads sleep on: a ring wakes all of them at once, and a thread that
took its ticket before its empty claim never misses a ring that came in between. Two listener
loops ring it, each in a thread of the worker process:

- `listen_socket`: the state dir's wake socket (`dataset_worker.wakeup`), rung by the admin
  server and the CLI of the same state dir;
- `listen_postgres`: `LISTEN dataset_worker_jobs` on a connection of its own; a trigger
  (migration 0005) notifies on every job that becomes ready, whoever queued it, on any machine.
  A dropped connection is opened again after a backoff, ringing once when it is back (a job may
  have been queued while nobody listened).
"""

from __future__ import annotations

import logging
import threading
import time

from dataset_worker.logs import log_event
from dataset_worker.wakeup import WakeSocket

log = logging.getLogger("dataset_worker.worker")

CHANNEL = "dataset_worker_jobs"  # the trigger of migration 0005 notifies this channel
POLL = 0.25  # seconds a listener waits before it checks its stop event (a worker's exit waits it)
RECONNECT_MIN, RECONNECT_MAX = 1.0, 30.0


class Doorbell:
    """Wakes idle worker threads early."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rings = 0

    def ticket(self) -> int:
        """Take before looking for work; `sleep` returns at once if a ring came since."""
        with self._cond:
            return self._rings

    def ring(self) -> None:
        """Wake every sleeping thread."""
        with self._cond:
            self._rings += 1
            self._cond.notify_all()

    def sleep(self, ticket: int, seconds: float, shutdown: threading.Event) -> bool:
        """Sleep up to `seconds`, until a ring after `ticket` or shutdown; True on shutdown.

        Shutdown rings the bell too (WorkerProcess.stop); the wait is also cut into `POLL`
        slices so a shutdown set elsewhere is noticed within a second.
        """
        deadline = time.monotonic() + seconds
        with self._cond:
            while self._rings == ticket and not shutdown.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, POLL))
        return shutdown.is_set()


def listen_socket(wake: WakeSocket, doorbell: Doorbell, stop: threading.Event) -> None:
    """Ring `doorbell` for every wake-up on the state dir's socket until `stop`; then close it."""
    try:
        while not stop.is_set():
            try:
                if wake.wait(POLL):
                    doorbell.ring()
            except OSError as exc:
                log_event(log, "wakeup.socket_error", logging.WARNING, error=str(exc))
                stop.wait(POLL)
    finally:
        wake.close()


def listen_postgres(conninfo: str, doorbell: Doorbell, stop: threading.Event) -> None:
    """Ring `doorbell` for every notification on CHANNEL until `stop`."""
    import psycopg

    delay = RECONNECT_MIN
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                doorbell.ring()  # something may have been queued while nobody listened
                delay = RECONNECT_MIN
                while not stop.is_set():
                    for _ in conn.notifies(timeout=POLL, stop_after=1):
                        doorbell.ring()
        except Exception as exc:
            log_event(log, "wakeup.listen_error", logging.WARNING, error=str(exc), retry_in=delay)
            stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX)
