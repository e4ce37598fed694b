"""Stopping a worker: SIGTERM to its process group, a grace period, then SIGKILL (supervisord's way).

The worker leads its own process group (the log pump starts it with a new group), so a signal to
the group also reaches any process the worker started, and nothing else.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

from dataset_worker.logs import log_event
from dataset_worker.manager.procinfo import ProcessIdentity, group_members, is_alive

log = logging.getLogger(__name__)

POLL = 0.02
# After SIGKILL the kernel tears the process down promptly; this only bounds a hung D-state.
KILL_WAIT = 10.0


def terminate(worker: ProcessIdentity, grace: float) -> bool:
    """Stop `worker` and its group; returns True when SIGKILL was needed (always when
    `grace` is 0: then it is sent at once, without a SIGTERM first).

    Returns once the worker is gone. Group members that outlive the worker get the rest of the
    grace period, then SIGKILL too, so no process of the run is left behind.
    """
    group = worker.pid
    if not is_alive(worker):
        return False
    if grace > 0:
        # No SIGTERM without grace: the worker would start a graceful stop (putting its jobs
        # back itself) that SIGKILL then cuts at a random point, so what a zero-grace stop did
        # to the jobs would depend on scheduling. It is a plain SIGKILL instead.
        signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + grace
        if wait_until(lambda: not is_alive(worker) and not group_members(group), deadline):
            return False
    log_event(log, "worker.kill", logging.WARNING, pid=worker.pid, grace=grace)
    signal_group(group, signal.SIGKILL)
    if not wait_until(lambda: not is_alive(worker), time.monotonic() + KILL_WAIT):
        raise RuntimeError(f"worker {worker.pid} survived SIGKILL for {KILL_WAIT:.0f}s")
    return True


def signal_group(pgid: int, signum: signal.Signals) -> None:
    """Send `signum` to process group `pgid` (no error when it is already gone)."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def wait_until(condition: Callable[[], bool], deadline: float) -> bool:
    """Poll `condition` until true (True) or `deadline` on the monotonic clock (False)."""
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
