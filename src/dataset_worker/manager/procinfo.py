"""Process identity from /proc: a pid plus its start time, so a recycled pid is never mistaken.

A pid alone is not an identity: after a process exits the kernel may hand the same number to an
unrelated process. The start time (field 22 of /proc/<pid>/stat, in clock ticks since boot) never
changes for a process and differs for any later one with the same pid. Linux only.
"""

from __future__ import annotations

import os
import select
from dataclasses import dataclass

_PROC = "/proc"


@dataclass(frozen=True)
class ProcessInfo:
    """The few fields of /proc/<pid>/stat the manager needs."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    start_ticks: int

    @property
    def is_zombie(self) -> bool:
        """True once the process has exited and only waits to be reaped by its parent."""
        return self.state in ("Z", "X", "x")


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as it was when first seen: pid and start time."""

    pid: int
    start_ticks: int


def read_process(pid: int) -> ProcessInfo | None:
    """The stat fields of `pid`, or None when no such process exists."""
    if pid <= 0:
        return None
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as stat:
            raw = stat.read().decode("ascii", "replace")
    except OSError:
        return None  # no such process (or it vanished while we read)
    try:
        # The command name (field 2) is in parentheses and may itself hold spaces or ")".
        rest = raw[raw.rindex(")") + 2 :].split()
        return ProcessInfo(
            pid=pid,
            state=rest[0],
            ppid=int(rest[1]),
            pgrp=int(rest[2]),
            start_ticks=int(rest[19]),
        )
    except (ValueError, IndexError):
        return None


def identity_of(pid: int) -> ProcessIdentity | None:
    """The identity of the live process `pid`, or None when it is gone (or a zombie)."""
    info = read_process(pid)
    if info is None or info.is_zombie:
        return None
    return ProcessIdentity(pid=pid, start_ticks=info.start_ticks)


def is_alive(identity: ProcessIdentity) -> bool:
    """True while the very process `identity` names runs (not a zombie, not a recycled pid)."""
    info = read_process(identity.pid)
    return info is not None and not info.is_zombie and info.start_ticks == identity.start_ticks


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes of process group `pgid`."""
    members = []
    for name in os.listdir(_PROC):
        if not name.isdigit():
            continue
        info = read_process(int(name))
        if info is not None and info.pgrp == pgid and not info.is_zombie:
            members.append(info.pid)
    return members


class LivenessWatch:
    """`is_alive` for the few processes asked about again and again (status polls the worker
    and its log pump at every request), answered by a pidfd instead of a read of /proc.

    A pidfd (Linux 5.3+) refers to one process, never to a later one with the same pid, and
    becomes readable when that process exits: checking it is a poll() with no wait. It is
    opened once per process and trusted only after /proc confirmed the identity (the process
    existed before the pidfd was opened, so the pidfd is that process's). Where pidfds are not
    available, or the process is already gone, /proc is read as by `is_alive`.
    """

    MAX_WATCHED = 4

    def __init__(self) -> None:
        self._fds: dict[ProcessIdentity, int] = {}

    def is_alive(self, identity: ProcessIdentity) -> bool:
        """True while the very process `identity` names runs (not a zombie)."""
        fd = self._fds.get(identity)
        if fd is None:
            fd = self._open(identity)
            if fd is None:
                return is_alive(identity)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return not poller.poll(0)

    def _open(self, identity: ProcessIdentity) -> int | None:
        try:
            fd = os.pidfd_open(identity.pid)
        except (OSError, AttributeError):
            return None  # gone already, or no pidfd support
        if not is_alive(identity):
            os.close(fd)
            return None
        if len(self._fds) >= self.MAX_WATCHED:
            self.close()
        self._fds[identity] = fd
        return fd

    def close(self) -> None:
        """Close the pidfds."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
