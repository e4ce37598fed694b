"""The state dir's worker lock: at most one worker per state dir, across processes and restarts.

An flock belongs to an open file description, which a child inherits: the server takes the lock,
hands the descriptor to the log pump, and the pump to the worker. The lock stays held while any of
them has it open, and the kernel releases it when the last one exits (even by SIGKILL), so there is
no stale lock file to clean up after a crash.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def try_lock(path: Path) -> int | None:
    """Take the exclusive lock without waiting; return its descriptor, or None if it is held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd
