"""Whether a worker row's process on this host is gone: a missing pid, a zombie, or a pid that
now belongs to a process started well after the row was registered (a reused pid)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from dataset_worker.worker.runtime.reaper import REUSE_MARGIN, local_process_gone
from tests.support.wait import wait_until


def _started_at(pid: int) -> datetime:
    """When `pid` started, from /proc (as the reaper computes it)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        ticks = int(stat.read().decode().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as info:
        boot = next(int(line.split()[1]) for line in info if line.startswith("btime "))
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)


def test_a_live_process_is_not_gone() -> None:
    me = os.getpid()
    assert not local_process_gone(me, None)
    assert not local_process_gone(me, _started_at(me) + timedelta(seconds=1))
    # Registered a little before the process start (clock skew, coarse ticks): still the same.
    assert not local_process_gone(me, _started_at(me) - timedelta(seconds=REUSE_MARGIN / 2))


def test_a_pid_reused_by_a_later_process_is_gone() -> None:
    me = os.getpid()
    registered = _started_at(me) - timedelta(seconds=REUSE_MARGIN * 2)
    assert local_process_gone(me, registered)
    naive = registered.replace(tzinfo=None)  # as SQLite hands it back
    assert local_process_gone(me, naive)


def test_an_exited_process_is_gone_zombie_or_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    registered = datetime.now(UTC)
    wait_until(lambda: local_process_gone(child.pid, registered), 30, "the child to exit")
    child.wait()
    assert local_process_gone(child.pid, registered) or _pid_reused(child.pid)


def _pid_reused(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")
