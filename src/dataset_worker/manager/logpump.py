"""The log pump: a tiny process that runs one worker and writes its output to rotating files.

The admin server starts `python -m dataset_worker.manager.logpump` in a new session and writes a
launch spec (JSON) to its stdin. The pump then
1. starts the worker as its own child, in a process group of its own, with stdout/stderr pipes;
2. records the run (pid, process start time, config) in the run record and tells the server the
   worker's pid on the "ready" pipe;
3. copies the worker's output into size-bounded segment files until both pipes close;
4. reaps the worker and records its exit code or signal, then exits.

So the worker never depends on a pipe to the server: the server may crash or restart and the
worker keeps running, its output still captured, its end still recorded. The pump and the worker
both hold the state dir's lock (an inherited flock), which is released only when both are gone.
The pump ignores SIGTERM/SIGINT/SIGHUP: a stop signals the worker's group, and the pump's job is
to outlive the worker long enough to record how it ended.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataset_worker.manager.procinfo import read_process
from dataset_worker.manager.runrecord import RunRecord, write_record
from dataset_worker.manager.segments import SegmentWriter, remove_streams

READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20  # a larger pipe means fewer wake-ups when the worker floods its output
# After the worker exited, keep draining output that its own children may still write.
DRAIN_IDLE_SECONDS = 0.5


@dataclass(frozen=True)
class PumpSpec:
    """What the server asks the pump to run (sent as JSON on the pump's stdin)."""

    run_id: int
    argv: list[str]
    config: dict[str, Any]
    record_path: str
    logs_dir: str
    lock_fd: int
    ready_fd: int
    segment_bytes: int
    segments_kept: int
    env: dict[str, str]


def _noop(_signum: int, _frame: object) -> None:
    # A Python handler rather than SIG_IGN: handlers are reset on exec, so the worker still gets
    # default signal behaviour, while an ignored disposition would be inherited by it.
    return None


def main() -> int:
    """Run the pump; the exit code is 0 once the worker's end is recorded, 1 if it never ran."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _noop)
    spec = PumpSpec(**json.loads(sys.stdin.read()))
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    logs = Path(spec.logs_dir)
    remove_streams(logs)
    writers = {
        name: SegmentWriter(logs, name, segment_bytes=spec.segment_bytes, keep=spec.segments_kept)
        for name in ("stdout", "stderr")
    }
    try:
        worker = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(spec.lock_fd,),
            process_group=0,
            env=spec.env,
        )
    except OSError as exc:
        _tell(spec.ready_fd, {"error": f"cannot start {spec.argv[0]}: {exc}"})
        return 1
    record = _started_record(spec, worker.pid)
    write_record(Path(spec.record_path), record)
    _tell(spec.ready_fd, {"pid": worker.pid, "startTicks": record.start_ticks})
    _pump(worker, writers)
    returncode = worker.wait()
    for writer in writers.values():
        writer.close()
    write_record(Path(spec.record_path), record.finished(time.time(), returncode))
    os.close(spec.lock_fd)
    return 0


def _started_record(spec: PumpSpec, pid: int) -> RunRecord:
    started = time.time()
    worker_info = read_process(pid)
    pump_info = read_process(os.getpid())
    return RunRecord(
        run_id=spec.run_id,
        pid=pid,
        start_ticks=worker_info.start_ticks if worker_info else 0,
        start_time=started,
        hostname=socket.gethostname(),
        pump_pid=os.getpid(),
        pump_start_ticks=pump_info.start_ticks if pump_info else 0,
        config=spec.config,
    )


def _tell(fd: int, message: dict[str, Any]) -> None:
    try:
        os.write(fd, (json.dumps(message) + "\n").encode())
    except OSError:
        pass  # the server gave up waiting: the record still tells the truth
    finally:
        os.close(fd)


def _pump(worker: subprocess.Popen[bytes], writers: dict[str, SegmentWriter]) -> None:
    """Copy both pipes to their writers until they close, or go idle after the worker exited."""
    selector = selectors.DefaultSelector()
    for name, pipe in (("stdout", worker.stdout), ("stderr", worker.stderr)):
        assert pipe is not None
        fd = pipe.fileno()
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # over the system's pipe size limit: the default size works too
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, name)
    while selector.get_map():
        events = selector.select(timeout=DRAIN_IDLE_SECONDS)
        for key, _mask in events:
            try:
                data = os.read(key.fd, READ_SIZE)
            except BlockingIOError:
                continue
            if data:
                _write(writers[key.data], data)
            else:
                selector.unregister(key.fd)
        if not events and worker.poll() is not None:
            break  # the worker is gone and nothing more arrives (a grandchild holds the pipe)
    selector.close()
    for pipe in (worker.stdout, worker.stderr):
        if pipe is not None:
            pipe.close()


_failed_writes: list[str] = []


def _write(writer: SegmentWriter, data: bytes) -> None:
    try:
        writer.write(data)
    except OSError as exc:
        # Keep reading the pipe even when the disk is full: a worker blocked on a full pipe
        # would stop working, which is worse than losing some of its output.
        if not _failed_writes:
            _failed_writes.append(str(exc))
            print(f"logpump: output is being dropped: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
