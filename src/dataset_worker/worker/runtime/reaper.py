"""The reaper loop: recovering the jobs of dead workers (docs/architecture.md#heartbeats-and-the-reaper).

Every worker process runs it. The transitions are db/queue's `reap_stale_workers`: a worker
whose last heartbeat is older than `stale_after` is dead, and so, at once, is a worker row of
this host whose process is gone (`local_process_gone`), so a crashed worker's jobs do not wait
out the stale threshold when another worker runs on the same machine.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime

from dataset_worker.db import Database
from dataset_worker.db.queue import reap_stale_workers
from dataset_worker.logs import log_event

# A process that started this long after its pid's worker row was registered is another one
# (the pid was reused). Generous, because the row's time is the database server's clock: within
# it a reused pid is taken for the worker, and the stale threshold catches the row instead.
REUSE_MARGIN = 60.0

log = logging.getLogger("dataset_worker.worker")


def local_process_gone(pid: int, registered_at: datetime | None) -> bool:
    """True when no live process of this host holds `pid`, or the one holding it started
    well after the worker row was registered at `registered_at` (a reused pid). Linux /proc;
    elsewhere only the existence of the pid is checked."""
    stat = _stat_fields(pid)
    if stat is None:
        return not _pid_exists(pid)
    state, start_ticks = stat
    if state in ("Z", "X", "x"):  # exited, waiting to be reaped by its parent
        return True
    if registered_at is None:
        return False
    started = _boot_time() + start_ticks / os.sysconf("SC_CLK_TCK")
    registered = _aware(registered_at).timestamp()
    return started > registered + REUSE_MARGIN


def _stat_fields(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) from /proc/<pid>/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read().decode("ascii", "replace")
        rest = raw[raw.rindex(")") + 2 :].split()
        return rest[0], int(rest[19])
    except (OSError, ValueError, IndexError):
        return None


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _boot_time() -> float:
    """Seconds since the epoch when this host booted (btime of /proc/stat)."""
    try:
        with open("/proc/stat", "rb") as stat:
            for line in stat:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return time.time() - time.monotonic()


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def run_reaper(db: Database, stale_after: float, interval: float, stop: threading.Event) -> None:
    """Reap dead workers now, then every `interval` until `stop` (any process may run this)."""
    while True:
        try:
            result = reap_stale_workers(db, stale_after, gone=local_process_gone)
        except Exception as exc:
            log_event(log, "reaper.failed", logging.WARNING, error=str(exc))
        else:
            if result.workers:
                log_event(log, "reaper.reaped", workers=result.workers, jobs=result.jobs)
        if stop.wait(interval):
            return
