"""Where a worker run is recorded in the state dir, and the run record itself (the pid file).

Layout under `<state dir>/worker/`:
- `lock`: flock'ed by whoever runs or starts a worker (held by the log pump and the worker);
- `run.json`: the run record, written by the log pump: pid and start time of the worker, its
  config, and, once it ended, its exit code or signal;
- `logs/`: the stdout/stderr segment files of the current or last run;
- `logpump.log`: the log pump's own errors (normally empty).

The record is replaced atomically (write a temporary file, then rename), so readers see either
the old or the new version, never half of one.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dataset_worker.manager.procinfo import ProcessIdentity
from dataset_worker.private import private_dir


@dataclass(frozen=True)
class WorkerPaths:
    """Files of the worker manager under one state dir."""

    state_dir: Path

    @property
    def root(self) -> Path:
        return self.state_dir / "worker"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def record(self) -> Path:
        return self.root / "run.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pump_log(self) -> Path:
        return self.root / "logpump.log"

    @property
    def audit(self) -> Path:
        return self.state_dir / "audit.log"

    def create(self) -> None:
        """Create the folders (private to the user: logs and config may be sensitive)."""
        private_dir(self.state_dir)
        for folder in (self.root, self.logs):
            folder.mkdir(mode=0o700, exist_ok=True)


@dataclass(frozen=True)
class RunRecord:
    """One worker run. `end_time` is None until the run ended."""

    run_id: int
    pid: int
    start_ticks: int
    start_time: float
    hostname: str
    pump_pid: int
    pump_start_ticks: int
    config: dict[str, Any] = field(default_factory=dict)
    end_time: float | None = None
    exit_code: int | None = None
    signal: str | None = None
    error: str | None = None

    @property
    def identity(self) -> ProcessIdentity:
        """The worker process of this run."""
        return ProcessIdentity(self.pid, self.start_ticks)

    @property
    def pump_identity(self) -> ProcessIdentity:
        """The log pump process of this run."""
        return ProcessIdentity(self.pump_pid, self.pump_start_ticks)

    @property
    def ended(self) -> bool:
        """True once the pump recorded how the worker ended."""
        return self.end_time is not None

    def finished(self, end_time: float, returncode: int) -> RunRecord:
        """This record with the end of the run: an exit code, or the signal that killed it."""
        if returncode < 0:
            return replace(self, end_time=end_time, signal=signal_name(-returncode))
        return replace(self, end_time=end_time, exit_code=returncode)


def signal_name(number: int) -> str:
    """ "SIGKILL" for 9; "SIG<n>" for numbers without a name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def read_record(path: Path) -> RunRecord | None:
    """The run record, or None when no worker has run in this state dir (or it is unreadable)."""
    try:
        raw = json.loads(path.read_text())
        return RunRecord(**raw)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        return None  # a foreign or damaged file is treated as "no record", never a crash


def write_record(path: Path, record: RunRecord) -> None:
    """Replace the run record atomically (mode 0600)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(record), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


# File timestamps come from a coarse clock (a few ms); a record younger than this may be
# replaced without its mtime changing, so it is not trusted from a cache.
_SETTLE_SECONDS = 0.1


class RecordReader:
    """`read_record` for a path read often (every status request), parsing the file again only
    when it changed.

    A change is seen in the file's inode, size or modification time, which every
    `write_record` changes (it renames a new file into place). A record written less than
    0.1 s before it was read is read again next time, because two replacements within the
    timestamps' granularity could reuse a freed inode with the same size and mtime (the "racy
    clean" rule of git's index).
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._signature: tuple[int, int, int, int] | None = None
        self._record: RunRecord | None = None

    def read(self) -> RunRecord | None:
        """The record as it is on disk now (None when there is none, as `read_record`)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._signature = None
            return None
        signature = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if signature == self._signature:
            return self._record
        record = read_record(self.path)
        settled = self._clock() - max(info.st_mtime_ns, info.st_ctime_ns) / 1e9 > _SETTLE_SECONDS
        self._signature = signature if settled else None
        self._record = record
        return record
