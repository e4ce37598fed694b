"""Files only their owner can read: the state folder, the SQLite database, logs, run records.

The state folder holds the database (with any secrets stored in it, and every file's path and
CID), the admin token and the worker's logs. On a shared host another local user must not read
them, whatever the umask of the process that created them: the folder is 0700 and the files
0600. Only files and folders of our own user are tightened (another user's cannot be changed,
and may be shared on purpose). The SQLite file itself is made private by `db/engine.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` (and its parents, with the umask) if missing; make it 0700 if ours."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if missing (never through a symlink); make it 0600 if
    it is ours."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError:
        return  # not ours to create (read-only folder, a symlink): left to whoever opens it
    os.close(fd)
    _tighten(path, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    try:
        info = os.lstat(path)
        if info.st_uid == os.geteuid() and info.st_mode & 0o777 & ~mode:
            os.chmod(path, info.st_mode & mode, follow_symlinks=False)
    except (OSError, NotImplementedError):
        return  # gone meanwhile, or a file system without modes
