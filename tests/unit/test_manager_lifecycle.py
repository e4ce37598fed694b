"""The worker manager with a trivial Python child standing in for the worker (the real worker is
exercised through the HTTP API in tests/integration/test_api_*.py).

Covers: start/stop with SIGTERM then SIGKILL, exits seen by status, one worker per state dir
across managers (server processes) and restarts, no zombies, and a worker that outlives a crash
of the server that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dataset_worker.manager.errors import NoWorkerLogs, WorkerAlreadyRunning, WorkerNotRunning
from dataset_worker.manager.launchconfig import WorkerLaunchConfig
from dataset_worker.manager.manager import WorkerManager
from dataset_worker.manager.procinfo import is_alive, read_process
from dataset_worker.manager.runrecord import WorkerPaths, read_record
from dataset_worker.manager.state import WorkerState
from tests.support.wait import wait_until

# Exits 130 on SIGTERM like the real worker; prints its config flags, then a line per 20 ms.
POLITE = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: (print("terminating", flush=True), sys.exit(130)))
print("args", *sys.argv[1:], flush=True)
print("to stderr", file=sys.stderr, flush=True)
i = 0
while True:
    print("tick", i, flush=True)
    i += 1
    time.sleep(0.02)
"""
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGTERM", flush=True)
while True:
    time.sleep(1)
"""
QUICK_EXIT = """
import sys
print("done", flush=True)
sys.exit(3)
"""


def script_command(script: str) -> Callable[[WorkerLaunchConfig], list[str]]:
    return lambda config: [sys.executable, "-c", textwrap.dedent(script), *config.to_args()]


class Released:
    """Records the release_jobs calls a manager makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, hostname: str, pid: int) -> int:
        self.calls.append((hostname, pid))
        return 2


def kill_leftovers(state_dir: Path) -> None:
    """Never leave a process behind, whatever a test did."""
    record = read_record(WorkerPaths(state_dir).record)
    if record is not None and is_alive(record.identity):
        os.killpg(record.pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(record.identity))


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "state"
    yield folder
    kill_leftovers(folder)


def make_manager(state_dir: Path, script: str = POLITE, **kwargs: object) -> WorkerManager:
    return WorkerManager(state_dir, script_command(script), **kwargs)  # type: ignore[arg-type]


def zombie_children() -> list[int]:
    zombies = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read_process(int(name))
            if info is not None and info.ppid == os.getpid() and info.is_zombie:
                zombies.append(info.pid)
    return zombies


def test_start_status_logs_stop(state_dir: Path) -> None:
    released = Released()
    manager = make_manager(state_dir, release_jobs=released)
    assert manager.status().state == WorkerState.STOPPED
    with pytest.raises(NoWorkerLogs):
        manager.logs()
    started = manager.start(WorkerLaunchConfig.model_validate({"concurrency": 3}))
    info = read_process(started.pid)
    assert info is not None
    assert info.pgrp == started.pid  # its own process group: a stop signals exactly that group
    assert info.ppid != os.getpid()  # a child of the log pump, not of the server

    status = manager.status()
    assert status.running and status.state == WorkerState.RUNNING
    assert status.pid == started.pid and status.run_id == 1
    assert status.config is not None and status.config["concurrency"] == 3
    assert status.start_time is not None and status.uptime_seconds is not None

    wait_until(lambda: b"tick 3" in manager.logs().chunks["stdout"].data)
    logs = manager.logs()
    assert logs.chunks["stdout"].data.startswith(b"args --concurrency 3 --enable-scan")
    assert logs.chunks["stderr"].data == b"to stderr\n"
    # One line: the last complete one, or the one being written right now (no newline yet).
    last = manager.logs(tail=1).chunks["stdout"].data
    assert last.startswith(b"tick") and last.rstrip(b"\n").count(b"\n") == 0

    stopped = manager.stop(timeout=10)
    assert (stopped.pid, stopped.exit_code, stopped.signal, stopped.forced) == (
        started.pid,
        130,
        None,
        False,
    )
    assert released.calls == []  # a worker that exited by itself released its own jobs
    assert read_process(started.pid) is None
    status = manager.status()
    assert not status.running and status.state == WorkerState.EXITED
    assert status.last_run is not None and status.last_run.exit_code == 130
    assert manager.logs().chunks["stdout"].data.endswith(b"terminating\n")  # kept after stop
    wait_until(lambda: not zombie_children())
    with pytest.raises(WorkerNotRunning):
        manager.stop()


def test_sigterm_ignored_means_sigkill_and_jobs_released(state_dir: Path) -> None:
    released = Released()
    manager = make_manager(state_dir, STUBBORN, release_jobs=released)
    started = manager.start(WorkerLaunchConfig())
    wait_until(lambda: b"ignoring" in manager.logs().chunks["stdout"].data)
    stopped = manager.stop(timeout=0.5)
    assert stopped.forced and stopped.signal == "SIGKILL" and stopped.exit_code is None
    assert stopped.jobs_released == 2
    record = read_record(manager.paths.record)
    assert record is not None
    assert released.calls == [(record.hostname, started.pid)]
    assert manager.status().last_run.signal == "SIGKILL"  # type: ignore[union-attr]


def test_a_worker_that_exits_by_itself_is_noticed(state_dir: Path) -> None:
    manager = make_manager(state_dir, QUICK_EXIT)
    started = manager.start(WorkerLaunchConfig())
    wait_until(lambda: not manager.status().running)
    status = manager.status()
    assert status.state == WorkerState.EXITED and status.pid is None
    assert status.last_run is not None
    assert (status.last_run.pid, status.last_run.exit_code) == (started.pid, 3)
    assert status.last_run.end_time is not None
    assert manager.logs().chunks["stdout"].data == b"done\n"
    with pytest.raises(WorkerNotRunning):
        manager.stop()
    again = manager.start(WorkerLaunchConfig())  # an exited worker does not block a new start
    assert again.run_id == 2


def test_a_crash_is_seen_with_its_signal_and_jobs_are_released(state_dir: Path) -> None:
    released = Released()
    manager = make_manager(state_dir, release_jobs=released)
    started = manager.start(WorkerLaunchConfig())
    os.kill(started.pid, signal.SIGSEGV)
    wait_until(lambda: not manager.status().running)
    last = manager.status().last_run
    assert last is not None and last.signal == "SIGSEGV" and last.exit_code is None
    wait_until(lambda: bool(released.calls))  # released in the background: status never blocks
    assert [pid for _host, pid in released.calls] == [started.pid]
    manager.status()
    time.sleep(0.2)  # give a wrong second release the chance to show up
    assert len(released.calls) == 1  # once per run


def test_a_second_start_is_refused_while_running(state_dir: Path) -> None:
    manager = make_manager(state_dir)
    started = manager.start(WorkerLaunchConfig())
    with pytest.raises(WorkerAlreadyRunning) as info:
        manager.start(WorkerLaunchConfig())
    assert info.value.pid == started.pid
    manager.stop()


def test_concurrent_starts_make_exactly_one_worker(state_dir: Path) -> None:
    managers = [make_manager(state_dir) for _ in range(3)]  # three "server processes"
    outcomes: list[object] = []
    barrier = threading.Barrier(30)

    def attempt(manager: WorkerManager) -> None:
        barrier.wait()
        try:
            outcomes.append(manager.start(WorkerLaunchConfig()).pid)
        except WorkerAlreadyRunning:
            outcomes.append("409")

    threads = [threading.Thread(target=attempt, args=(managers[i % 3],)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pids = [o for o in outcomes if o != "409"]
    assert len(pids) == 1 and outcomes.count("409") == 29
    assert (
        len([p for p in os.listdir("/proc") if p.isdigit() and _is_worker_of(int(p), state_dir)])
        == 1
    )
    managers[2].stop()


def _is_worker_of(pid: int, state_dir: Path) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    record = read_record(WorkerPaths(state_dir).record)
    return record is not None and pid == record.pid and b'print("tick"' in b" ".join(argv)


def test_another_manager_on_the_same_state_dir_sees_and_stops_the_worker(state_dir: Path) -> None:
    first = make_manager(state_dir)
    started = first.start(WorkerLaunchConfig.model_validate({"concurrency": 2}))
    second = make_manager(state_dir)  # another server process, or this one after a restart
    status = second.status()
    assert status.running and status.pid == started.pid
    assert status.config is not None and status.config["concurrency"] == 2
    with pytest.raises(WorkerAlreadyRunning):
        second.start(WorkerLaunchConfig())
    # Once its SIGTERM handler is installed (a signal during interpreter start-up kills it).
    wait_until(lambda: b"tick" in second.logs().chunks["stdout"].data)
    stopped = second.stop()
    assert stopped.exit_code == 130
    assert not first.status().running
    assert first.status().last_run.exit_code == 130  # type: ignore[union-attr]


def test_the_worker_outlives_a_crash_of_the_server(state_dir: Path, tmp_path: Path) -> None:
    server = tmp_path / "server.py"
    server.write_text(
        textwrap.dedent(
            f"""
            import os, signal, sys
            from pathlib import Path
            from dataset_worker.manager.launchconfig import WorkerLaunchConfig
            from dataset_worker.manager.manager import WorkerManager
            script = {POLITE!r}
            manager = WorkerManager(Path({str(state_dir)!r}), lambda c: [sys.executable, "-c", script])
            print(manager.start(WorkerLaunchConfig()).pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
    )
    crashed = subprocess.run([sys.executable, str(server)], capture_output=True, timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    pid = int(crashed.stdout)
    record = read_record(WorkerPaths(state_dir).record)
    assert record is not None and record.pid == pid and is_alive(record.identity)

    adopted = make_manager(state_dir)
    count = len(adopted.logs().chunks["stdout"].data)
    wait_until(lambda: len(adopted.logs().chunks["stdout"].data) > count)  # still logging
    assert adopted.status().pid == pid
    stopped = adopted.stop()
    assert (stopped.pid, stopped.exit_code, stopped.forced) == (pid, 130, False)


def test_a_recycled_pid_is_not_taken_for_the_worker(state_dir: Path) -> None:
    manager = make_manager(state_dir)
    started = manager.start(WorkerLaunchConfig())
    manager.stop()
    # Forge a record naming a live process (ourselves) with another start time: a recycled pid.
    # The pump's identity is forged the same way: the stopped run's pump may still be exiting,
    # and a live pump rightly counts the run as running.
    record = read_record(manager.paths.record)
    assert record is not None
    me = read_process(os.getpid())
    assert me is not None
    from dataclasses import replace

    from dataset_worker.manager.runrecord import write_record

    recycled = me.start_ticks - 1
    forged = replace(record, pid=os.getpid(), start_ticks=recycled, end_time=None)
    write_record(
        manager.paths.record, replace(forged, pump_pid=os.getpid(), pump_start_ticks=recycled)
    )
    fresh = make_manager(state_dir)
    assert not fresh.status().running
    with pytest.raises(WorkerNotRunning):
        fresh.stop()
    assert started.pid != os.getpid()


def test_a_command_that_cannot_start_is_a_spawn_failure(state_dir: Path) -> None:
    from dataset_worker.manager.errors import WorkerSpawnFailed

    manager = WorkerManager(state_dir, lambda config: ["/nonexistent/dataset-worker"])
    with pytest.raises(WorkerSpawnFailed, match="cannot start /nonexistent/dataset-worker"):
        manager.start(WorkerLaunchConfig())
    status = manager.status()
    assert status.state == WorkerState.FATAL and not status.running
    assert status.error is not None and "nonexistent" in status.error
    wait_until(lambda: not zombie_children())
