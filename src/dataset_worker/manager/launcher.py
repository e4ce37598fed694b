"""Starting a worker through the log pump, and waiting until the worker process exists."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from dataset_worker.manager.errors import WorkerSpawnFailed
from dataset_worker.manager.logpump import PumpSpec
from dataset_worker.manager.procinfo import ProcessIdentity
from dataset_worker.manager.runrecord import WorkerPaths

READY_TIMEOUT = 30.0  # a cold Python start on a loaded 2-core machine can take seconds
_PUMP_LOG_TAIL = 2000


@dataclass(frozen=True)
class LogLimits:
    """How much worker output is kept on disk per stream: `segment_bytes * segments_kept`."""

    segment_bytes: int = 8 * 1024 * 1024
    segments_kept: int = 4


@dataclass
class Launched:
    """A started run: the pump (our child, to be reaped) and the worker it started."""

    pump: subprocess.Popen[bytes]
    worker: ProcessIdentity


def launch_worker(
    paths: WorkerPaths,
    *,
    run_id: int,
    argv: list[str],
    config: dict[str, Any],
    env: dict[str, str],
    lock_fd: int,
    limits: LogLimits,
    ready_timeout: float = READY_TIMEOUT,
) -> Launched:
    """Start the log pump in a new session; it starts the worker. Returns once the worker exists.

    Raises WorkerSpawnFailed with the reason when the pump or the worker could not be started.
    """
    ready_read, ready_write = os.pipe()
    try:
        spec = PumpSpec(
            run_id=run_id,
            argv=argv,
            config=config,
            record_path=str(paths.record),
            logs_dir=str(paths.logs),
            lock_fd=lock_fd,
            ready_fd=ready_write,
            segment_bytes=limits.segment_bytes,
            segments_kept=limits.segments_kept,
            env=env,
        )
        pump = _spawn_pump(paths, spec, pass_fds=(lock_fd, ready_write))
        os.close(ready_write)
        ready_write = -1
        message = _read_ready(ready_read, ready_timeout)
    finally:
        os.close(ready_read)
        if ready_write >= 0:
            os.close(ready_write)
    if message is None or "pid" not in message:
        _abandon(pump)
        reason = (message or {}).get("error") or _pump_failure(paths, pump)
        raise WorkerSpawnFailed(f"Failed to start the worker process: {reason}")
    return Launched(pump, ProcessIdentity(int(message["pid"]), int(message["startTicks"])))


def _spawn_pump(
    paths: WorkerPaths, spec: PumpSpec, *, pass_fds: tuple[int, ...]
) -> subprocess.Popen[bytes]:
    # Truncated per launch: the file holds the current pump's own errors only (normally none).
    with open(paths.pump_log, "wb") as pump_log:
        try:
            pump = subprocess.Popen(
                [sys.executable, "-m", "dataset_worker.manager.logpump"],
                stdin=subprocess.PIPE,
                stdout=pump_log,
                stderr=pump_log,
                pass_fds=pass_fds,
                start_new_session=True,  # no signal meant for the server reaches it
            )
        except OSError as exc:
            raise WorkerSpawnFailed(f"Failed to start the log pump: {exc}") from exc
    assert pump.stdin is not None
    try:
        pump.stdin.write(json.dumps(asdict(spec)).encode())
        pump.stdin.close()
    except OSError:
        pass  # the pump died at once: the ready pipe reports it
    return pump


def _read_ready(fd: int, timeout: float) -> dict[str, Any] | None:
    """The pump's one-line JSON message, or None on EOF or timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    try:
        message = json.loads(data)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _abandon(pump: subprocess.Popen[bytes]) -> None:
    """Kill a pump that failed to start a worker, and reap it."""
    if pump.poll() is None:
        pump.kill()
    pump.wait()


def _pump_failure(paths: WorkerPaths, pump: subprocess.Popen[bytes]) -> str:
    try:
        with open(paths.pump_log, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - _PUMP_LOG_TAIL))
            tail = log.read().decode("utf-8", "replace").strip()
    except OSError:
        tail = ""
    code = pump.returncode
    return f"the log pump exited with code {code}" + (f": {tail}" if tail else "")


def child_env(remove: tuple[str, ...]) -> dict[str, str]:
    """The worker's environment: the server's, minus secrets, with unbuffered Python output."""
    env = {key: value for key, value in os.environ.items() if key not in remove}
    env["PYTHONUNBUFFERED"] = "1"  # output reaches the logs as it is written, not in 8 KiB blocks
    return env
