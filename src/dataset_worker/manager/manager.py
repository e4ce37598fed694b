"""The worker-process manager: start, stop, status and logs of the one worker of a state dir.

The truth lives in the state dir, not in this object: the run record says which worker runs or
ran last and how it ended, the flock says whether a worker (or a start) holds the state dir. So
several server processes on one state dir agree, and a restarted server adopts the running worker.
This object adds the in-flight states (STARTING, STOPPING) of its own operations and serialises
them within the process.

Stop is SIGTERM to the worker's process group, a wait of up to the grace period, then SIGKILL; a
killed worker's jobs are released at once (they would otherwise wait for a reaper).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from dataset_worker.config import ENV_ADMIN_TOKEN
from dataset_worker.logs import log_event
from dataset_worker.manager.errors import (
    NoWorkerLogs,
    WorkerAlreadyRunning,
    WorkerNotRunning,
    WorkerSpawnFailed,
    WorkerStarting,
)
from dataset_worker.manager.launchconfig import WorkerLaunchConfig
from dataset_worker.manager.launcher import READY_TIMEOUT, LogLimits, child_env, launch_worker
from dataset_worker.manager.lock import try_lock
from dataset_worker.manager.logtail import DEFAULT_CAPACITY, LogChunk, StreamTail, last_lines
from dataset_worker.manager.procinfo import LivenessWatch, is_alive
from dataset_worker.manager.results import (
    RunSummary,
    StartResult,
    StopResult,
    WorkerLogs,
    WorkerStatus,
)
from dataset_worker.manager.runrecord import RecordReader, RunRecord, WorkerPaths, read_record
from dataset_worker.manager.segments import STREAMS
from dataset_worker.manager.state import WorkerState, check_transition
from dataset_worker.manager.stopping import POLL, terminate

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10.0
# How long to wait for a finishing run's pump to record the end and let go of the lock.
SETTLE_WAIT = 3.0
# How long a start or a stop waits for a start already under way (in this server process or
# another) to have a worker: a launch gives up after READY_TIMEOUT.
START_WAIT = READY_TIMEOUT + 5.0

CommandFactory = Callable[[WorkerLaunchConfig], list[str]]
JobReleaser = Callable[[str, int], int]  # (hostname, pid) -> number of jobs released


class WorkerManager:
    """Manage the worker process of one state dir.

    `command` builds the worker's argv from a config; `env` is its environment; `release_jobs`
    puts a killed worker's jobs back to `ready`; `log_capacity` bounds each in-memory log buffer.
    """

    def __init__(
        self,
        state_dir: Path,
        command: CommandFactory,
        *,
        env: dict[str, str] | None = None,
        release_jobs: JobReleaser | None = None,
        log_capacity: int = DEFAULT_CAPACITY,
        log_limits: LogLimits | None = None,
    ) -> None:
        self.paths = WorkerPaths(state_dir)
        self.paths.create()
        self._records = RecordReader(self.paths.record)  # read by status() at every request
        self._liveness = LivenessWatch()  # likewise: the worker's and the pump's liveness
        self._command = command
        self._env = env if env is not None else child_env((ENV_ADMIN_TOKEN,))
        self._release_jobs = release_jobs
        self._limits = log_limits or LogLimits()
        self._tails = {stream: StreamTail(stream, log_capacity) for stream in STREAMS}
        self._state_lock = threading.Lock()
        # Notified at every state change: a start or stop waits on it while a start is under way.
        self._changed = threading.Condition(self._state_lock)
        self._stop_lock = threading.Lock()
        self._state = WorkerState.STOPPED
        self._record: RunRecord | None = None
        self._error: str | None = None
        self._released: set[int] = set()
        with self._state_lock:
            self._observe()  # adopt a worker that runs already
        self.server_started = time.time()

    # -- operations ------------------------------------------------------------------------

    def start(self, config: WorkerLaunchConfig) -> StartResult:
        """Start a worker with `config`; returns once the process exists.

        Raises WorkerAlreadyRunning while one runs, starts or stops (in any server process on
        this state dir), naming the current run: a start already under way is waited for, so
        the reply carries its worker's pid. WorkerSpawnFailed when it cannot be started.
        """
        with self._state_lock:
            self._await_start(time.monotonic() + START_WAIT)
            self._observe()
            if self._state in (WorkerState.STARTING, WorkerState.RUNNING, WorkerState.STOPPING):
                raise self._conflict()
            previous_state = self._state
            self._transition(WorkerState.STARTING)
        try:
            lock_fd = self._take_worker_lock()
        except WorkerAlreadyRunning:
            with self._state_lock:
                self._state = previous_state  # nothing happened: back to where we were
                self._changed.notify_all()
                self._observe()
            raise
        try:
            return self._launch(config, lock_fd)
        finally:
            os.close(lock_fd)  # the pump and the worker hold their own copies

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> StopResult:
        """Stop the worker: SIGTERM to its group, up to `timeout` s of grace, then SIGKILL.

        Returns once the process is gone. A start under way (here or in another server process
        on this state dir) is waited for, then its worker is stopped; WorkerStarting if it is
        still starting after START_WAIT. Raises WorkerNotRunning when no worker is alive.
        """
        with self._stop_lock:
            deadline = time.monotonic() + START_WAIT
            self._await_foreign_start(deadline)
            with self._state_lock:
                self._await_start(deadline)
                self._observe()
                record = self._record
                if self._state == WorkerState.STARTING:
                    raise WorkerStarting()
                if self._state != WorkerState.RUNNING or record is None:
                    raise WorkerNotRunning()
                self._transition(WorkerState.STOPPING)
            try:
                forced = terminate(record.identity, timeout)
            except BaseException:
                with self._state_lock:
                    self._transition(WorkerState.RUNNING)
                raise
            final = self._await_end(record)
            released = self._release_once(final) if forced or not _clean_end(final) else 0
            with self._state_lock:
                self._record = final
                self._transition(WorkerState.EXITED)
            result = StopResult(final.pid, final.exit_code, final.signal, forced, released)
            log_event(log, "worker.stopped", pid=final.pid, forced=forced, code=final.exit_code)
            return result

    def status(self) -> WorkerStatus:
        """The worker's state, noticing a worker that exited by itself.

        Never blocks: it reads the run record and /proc only (a crashed worker's jobs are
        released in the background), so it may be called from an event loop.
        """
        with self._state_lock:
            self._observe()
            state, record, error = self._state, self._record, self._error
        if record is not None and state == WorkerState.EXITED:
            self._release_after_crash(record)
        running = state in (WorkerState.RUNNING, WorkerState.STOPPING)
        current = record if running else None
        start = _utc(record.start_time) if current and record else None
        return WorkerStatus(
            state=state,
            running=running,
            pid=current.pid if current else None,
            config=current.config if current else None,
            start_time=start,
            uptime_seconds=max(0.0, time.time() - current.start_time) if current else None,
            run_id=record.run_id if record else None,
            last_run=_summary(record) if record is not None and not running else None,
            error=error if state == WorkerState.FATAL else None,
        )

    def logs(
        self,
        *,
        streams: tuple[str, ...] = STREAMS,
        tail: int | None = None,
        offset: int | None = None,
        max_bytes: int | None = None,
    ) -> WorkerLogs:
        """Output of the current or last run.

        Default: the in-memory buffer (the last `log_capacity` bytes) of each stream. `tail`: its
        last N lines. `offset`: up to `max_bytes` (default: the buffer size) from that byte on.
        Raises NoWorkerLogs when no worker ever ran in this state dir.
        """
        record = read_record(self.paths.record)
        if record is None:
            raise NoWorkerLogs()
        chunks: dict[str, LogChunk] = {}
        for stream in streams:
            chunks[stream] = self._read_stream(record.run_id, stream, tail, offset, max_bytes)
        running = not record.ended and is_alive(record.identity)
        return WorkerLogs(record.run_id, running, record.pid, chunks)

    def read_since(self, offsets: dict[str, int], max_bytes: int | None = None) -> WorkerLogs:
        """New output of the current or last run: each stream of `offsets` from its offset."""
        record = read_record(self.paths.record)
        if record is None:
            raise NoWorkerLogs()
        chunks = {
            stream: self._read_stream(record.run_id, stream, None, offset, max_bytes)
            for stream, offset in offsets.items()
        }
        running = not record.ended and is_alive(record.identity)
        return WorkerLogs(record.run_id, running, record.pid, chunks)

    def current_record(self) -> RunRecord | None:
        """The run record as it is on disk now (None before the first run)."""
        return read_record(self.paths.record)

    # -- start -----------------------------------------------------------------------------

    def _take_worker_lock(self) -> int:
        """The state dir's worker lock.

        Held with no live worker means a run is finishing (its pump lets go in a moment) or
        another server process is starting one: wait, so that a conflict names the new worker.
        """
        deadline = time.monotonic() + START_WAIT
        while True:
            fd = try_lock(self.paths.lock)
            if fd is not None:
                return fd
            record = _live_record(self.paths)
            if record is not None:
                raise WorkerAlreadyRunning(record.pid, record.run_id)
            if time.monotonic() >= deadline:
                raise WorkerAlreadyRunning(None)
            time.sleep(POLL)

    def _await_start(self, deadline: float) -> None:
        """Wait until this process's start under way (if any) has an outcome (state lock held)."""
        while self._state == WorkerState.STARTING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._changed.wait(remaining)

    def _await_foreign_start(self, deadline: float) -> None:
        """Wait while the worker lock is held but no worker lives: a start in another server
        process (or a run that is finishing). Returns at once when neither is happening."""
        while time.monotonic() < deadline:
            fd = try_lock(self.paths.lock)
            if fd is not None:
                os.close(fd)  # nobody is starting or running a worker
                return
            if _live_record(self.paths) is not None:
                return
            time.sleep(POLL)

    def _conflict(self) -> WorkerAlreadyRunning:
        """The 409 of a start: the current run, or none yet while it is still starting."""
        record = self._record
        if self._state == WorkerState.STARTING or record is None:
            return WorkerAlreadyRunning(None)
        return WorkerAlreadyRunning(record.pid, record.run_id)

    def _launch(self, config: WorkerLaunchConfig, lock_fd: int) -> StartResult:
        previous = read_record(self.paths.record)
        run_id = previous.run_id + 1 if previous else 1
        try:
            launched = launch_worker(
                self.paths,
                run_id=run_id,
                argv=self._command(config),
                config=config.as_json(),
                env=self._env,
                lock_fd=lock_fd,
                limits=self._limits,
            )
        except BaseException as exc:
            with self._state_lock:
                self._error = str(exc) if isinstance(exc, WorkerSpawnFailed) else repr(exc)
                self._transition(WorkerState.FATAL)
            log_event(log, "worker.spawn_failed", logging.ERROR, reason=self._error)
            raise
        _reap_in_background(launched.pump)
        with self._state_lock:
            self._error = None
            self._record = read_record(self.paths.record)
            self._transition(WorkerState.RUNNING)
            self._observe()  # it may have exited already
        log_event(log, "worker.started", pid=launched.worker.pid, run=run_id)
        return StartResult(launched.worker.pid, run_id, config.as_json())

    # -- stop ------------------------------------------------------------------------------

    def _await_end(self, record: RunRecord, wait: float = SETTLE_WAIT) -> RunRecord:
        """The record of `record`'s run once the pump wrote its end (or the pump is gone)."""
        deadline = time.monotonic() + wait
        current = record
        while True:
            latest = read_record(self.paths.record)
            if latest is not None and latest.run_id == record.run_id:
                current = latest
            if current.ended or not is_alive(current.pump_identity):
                return current
            if time.monotonic() >= deadline:
                return current
            time.sleep(POLL)

    def _release_after_crash(self, record: RunRecord) -> None:
        """Release a crashed worker's jobs once, in the background (it is a database write)."""
        if _clean_end(record) or is_alive(record.identity) or self._release_jobs is None:
            return
        with self._state_lock:
            if record.run_id in self._released:
                return
        threading.Thread(
            target=self._release_once, args=(record,), name="release-jobs", daemon=True
        ).start()

    def _release_once(self, record: RunRecord) -> int | None:
        """Give a dead worker's `processing` jobs back (once per run and server process)."""
        if self._release_jobs is None:
            return None
        with self._state_lock:
            if record.run_id in self._released:
                return 0
            self._released.add(record.run_id)
        try:
            released = self._release_jobs(record.hostname, record.pid)
        except Exception as exc:  # the database may be down; the reaper will catch up
            log_event(log, "worker.release_failed", logging.WARNING, pid=record.pid, error=exc)
            return None
        log_event(log, "worker.jobs_released", pid=record.pid, jobs=released)
        return released

    # -- state -----------------------------------------------------------------------------

    def _observe(self) -> None:
        """Bring the state up to date with the state dir (caller holds the state lock)."""
        if self._state in (WorkerState.STARTING, WorkerState.STOPPING):
            return  # our own operation is in flight and will set the outcome
        record = self._records.read()
        self._record = record
        if record is None:
            return
        alive = self._liveness.is_alive
        if not record.ended and (alive(record.identity) or alive(record.pump_identity)):
            # A worker whose pump has not yet recorded its end still counts as running: the run
            # is over once its exit code is known (a few milliseconds after the exit).
            self._transition(WorkerState.RUNNING)
        elif self._state != WorkerState.FATAL or self._error is None:
            self._transition(WorkerState.EXITED)

    def _transition(self, new: WorkerState) -> None:
        check_transition(self._state, new)
        if new != self._state:
            log_event(log, "worker.state", old=str(self._state), new=str(new))
            self._state = new
            self._changed.notify_all()

    def _read_stream(
        self, run_id: int, stream: str, tail: int | None, offset: int | None, max_bytes: int | None
    ) -> LogChunk:
        buffer = self._tails[stream]
        if offset is not None:
            return buffer.read_from(self.paths.logs, run_id, offset, max_bytes or buffer.capacity)
        chunk = buffer.snapshot(self.paths.logs, run_id)
        if tail is None:
            return chunk
        data = last_lines(chunk.data, tail)
        return LogChunk(chunk.end - len(data), chunk.end, data)


def _live_record(paths: WorkerPaths) -> RunRecord | None:
    """The run record when its worker is alive now, else None."""
    record = read_record(paths.record)
    if record is not None and not record.ended and is_alive(record.identity):
        return record
    return None


def _clean_end(record: RunRecord) -> bool:
    """True when the worker exited with a code (it had the chance to release its own jobs)."""
    return record.ended and record.exit_code is not None


def _summary(record: RunRecord) -> RunSummary:
    return RunSummary(
        run_id=record.run_id,
        pid=record.pid,
        start_time=_utc(record.start_time),
        end_time=_utc(record.end_time) if record.end_time is not None else None,
        exit_code=record.exit_code,
        signal=record.signal,
        config=record.config,
    )


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _reap_in_background(pump: subprocess.Popen[bytes]) -> None:
    """Wait on the pump (our child) so it never lingers as a zombie."""
    threading.Thread(target=pump.wait, name=f"reap-pump-{pump.pid}", daemon=True).start()
