"""The `dataset-worker run` process: threads, background loops, signals, exit code (docs/architecture.md#signals-and-exit-codes).

Exit codes: 0 every thread finished (exit-on-complete) and no job of its types and preparations
went to `error` meanwhile; 1 such a job failed, a thread stopped with an error (exit-on-error, a
crash) or startup failed; 130 SIGINT/SIGTERM. On the first signal every
in-flight job is stopped and put back to `ready`; a second signal exits at once after a
best-effort release bounded by a few seconds.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from dataset_worker.db import Database
from dataset_worker.db.models import JobType, utcnow
from dataset_worker.db.queue import CompletionHook, failed_since
from dataset_worker.logs import log_event
from dataset_worker.wakeup import WakeSocket, ring
from dataset_worker.worker.runtime.config import WorkerConfig, choose_read_ahead
from dataset_worker.worker.runtime.context import Handler
from dataset_worker.worker.runtime.handlers import default_completion_hooks, default_handlers
from dataset_worker.worker.runtime.monitor import JobMonitor
from dataset_worker.worker.runtime.reaper import run_reaper
from dataset_worker.worker.runtime.registry import (
    LiveWorkers,
    register_workers,
    run_heartbeat,
    unregister_workers,
)
from dataset_worker.worker.runtime.thread import ThreadResult, WorkerThread
from dataset_worker.worker.runtime.wakeup import Doorbell, listen_postgres, listen_socket

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SIGNAL = 130
FORCED_EXIT_GRACE = 5.0  # seconds the second-signal release may take
JOIN_TIMEOUT = 10.0

log = logging.getLogger("dataset_worker.worker")


class WorkerProcess:
    """Runs `config.concurrency` worker threads until they are done or a signal arrives.

    Without `handlers` the real job bodies run, with the real completion hooks (the auto
    chain); with test handlers no hook runs unless `completion_hooks` are given too.
    """

    def __init__(
        self,
        db: Database,
        config: WorkerConfig,
        handlers: Mapping[JobType, Handler] | None = None,
        completion_hooks: Mapping[JobType, CompletionHook] | None = None,
        *,
        state_dir: Path | None = None,
        deals_state_dir: Path | None = None,
    ) -> None:
        self.db = db
        self.state_dir = state_dir  # where `prep create` and the admin server ring (wakeup.py)
        self.doorbell = Doorbell()
        # With a state dir (as `dataset-worker run` gives), a deal loop runs too (deals/loop.py).
        self.deals_state_dir = deals_state_dir
        self.config = config.validate()
        self.handlers = dict(handlers) if handlers is not None else default_handlers()
        if completion_hooks is None and handlers is None:
            completion_hooks = default_completion_hooks()
        self.completion_hooks = dict(completion_hooks or {})
        self.hostname = socket.gethostname()
        # Every thread may run a pack job: read ahead only while they leave a core idle.
        self.pack_read_ahead = choose_read_ahead(config.concurrency)
        self.worker_ids = [str(uuid.uuid4()) for _ in range(config.concurrency)]
        self.shutdown = threading.Event()
        self.live = LiveWorkers(db, self.worker_ids)
        self.monitor = JobMonitor(db, config.monitor_interval)
        self._background_stop = threading.Event()
        self._results: queue.Queue[ThreadResult] = queue.Queue()
        self._signals = 0
        self._exit_code = EXIT_OK
        self._wake_socket: WakeSocket | None = None

    def run(self) -> int:
        """Run to the end and return the process exit code."""
        self._log_start()
        try:
            register_workers(self.db, self.worker_ids)
        except Exception as exc:
            log_event(log, "worker.start_failed", logging.ERROR, error=str(exc))
            return EXIT_ERROR
        started = utcnow()
        restore = self._install_signal_handlers()
        background = self._start_background()
        try:
            self._start_threads()
            self._wait_for_threads()
        finally:
            self._background_stop.set()
            if self._wake_socket is not None:
                self._wake_socket.interrupt()  # its listener sees the stop now, not in a POLL
            for thread in background:
                thread.join(JOIN_TIMEOUT)
            self._unregister_leftovers()
            restore()
        if self._exit_code == EXIT_OK and self.config.exit_on_complete:
            self._exit_code = self._check_failures(started)
        log_event(log, "worker.exit", code=self._exit_code)
        return self._exit_code

    def _check_failures(self, since: datetime) -> int:
        """EXIT_ERROR when a job of this worker's types and preparations went to `error`
        during the run (by any worker): the queue is done, but not everything succeeded."""
        config = self.config
        try:
            failed = failed_since(self.db, config.job_types, since, config.attachments)
        except Exception as exc:
            log_event(log, "worker.check_failed", logging.ERROR, error=str(exc))
            return EXIT_ERROR
        if failed:
            log_event(log, "worker.jobs_failed", logging.ERROR, jobs=failed)
            return EXIT_ERROR
        return EXIT_OK

    def stop(self, code: int = EXIT_SIGNAL) -> None:
        """Ask every thread to stop; in-flight jobs go back to `ready`. First cause wins."""
        if not self.shutdown.is_set():
            self._exit_code = code
            self.shutdown.set()
            self.doorbell.ring()  # idle threads notice the shutdown at once

    def _log_start(self) -> None:
        config = self.config
        log_event(
            log,
            "worker.start",
            pid=os.getpid(),
            hostname=self.hostname,
            concurrency=config.concurrency,
            types=",".join(config.job_types),
            min_interval=config.min_interval,
            max_interval=config.max_interval,
            heartbeat_interval=config.heartbeat_interval,
            stale_after=config.stale_after,
            exit_on_complete=config.exit_on_complete,
            exit_on_error=config.exit_on_error,
            max_attempts=config.max_attempts,
            pack_read_ahead=self.pack_read_ahead,
            attachments=",".join(map(str, config.attachments)) or "all",
        )

    def _start_background(self) -> list[threading.Thread]:
        stop, config = self._background_stop, self.config
        loops: list[tuple[str, Callable[[], None]]] = [
            ("heartbeat", lambda: run_heartbeat(self.live, config.heartbeat_interval, stop)),
            (
                "reaper",
                lambda: run_reaper(self.db, config.stale_after, config.heartbeat_interval, stop),
            ),
            ("monitor", lambda: self.monitor.run(stop)),
        ]
        if self.deals_state_dir is not None:
            loops.append(("deals", lambda: self._run_deals(stop)))
        loops += self._wake_listeners(stop)
        threads = [threading.Thread(target=fn, name=name, daemon=True) for name, fn in loops]
        for thread in threads:
            thread.start()
        return threads

    def _run_deals(self, stop: threading.Event) -> None:
        from dataset_worker.deals.loop import run_deal_loop  # only processes that make deals

        assert self.deals_state_dir is not None
        try:
            run_deal_loop(self.db, self.deals_state_dir, stop)
        except Exception as exc:  # e.g. a bad DATASET_WORKER_DEAL_* value: jobs still run
            log_event(log, "deals.stopped", logging.ERROR, error=f"{type(exc).__name__}: {exc}")

    def _wake_listeners(self, stop: threading.Event) -> list[tuple[str, Callable[[], None]]]:
        """What rings the doorbell: the state dir's wake socket, and LISTEN on PostgreSQL."""
        loops: list[tuple[str, Callable[[], None]]] = []
        # The state dir exists when this process uses it (SQLite) or was given one that does;
        # a PostgreSQL worker never creates a folder just to listen in it.
        if self.state_dir is not None and self.state_dir.is_dir():
            try:
                wake = WakeSocket(self.state_dir)
            except OSError as exc:  # a read-only state dir: the poll backoff still works
                log_event(log, "wakeup.socket_unavailable", logging.WARNING, error=str(exc))
            else:
                self._wake_socket = wake
                loops.append(("wake-socket", lambda: listen_socket(wake, self.doorbell, stop)))
        if self.db.engine.dialect.name == "postgresql":
            conninfo = self.db.engine.url.set(drivername="postgresql").render_as_string(
                hide_password=False
            )
            loops.append(("wake-listen", lambda: listen_postgres(conninfo, self.doorbell, stop)))
        return loops

    def _queued(self) -> None:
        """A job queued work (a scan's pack jobs): wake this process's idle threads, and the
        worker processes of the state dir (on SQLite nothing else tells them; `prepare`'s pack
        helpers wait on its scan)."""
        self.doorbell.ring()
        if self.state_dir is not None:
            ring(self.state_dir)

    def _start_threads(self) -> None:
        for index, worker_id in enumerate(self.worker_ids):
            worker = WorkerThread(
                self.db,
                self.config,
                self.handlers,
                worker_id,
                self.shutdown,
                self.monitor,
                read_ahead=self.pack_read_ahead,
                completion_hooks=self.completion_hooks,
                hostname=self.hostname,
                doorbell=self.doorbell,
                queued=self._queued,
            )
            thread = threading.Thread(
                target=self._thread_main, args=(worker,), name=f"worker-{index}", daemon=True
            )
            log_event(log, "thread.start", worker=worker_id, index=index)
            thread.start()

    def _thread_main(self, worker: WorkerThread) -> None:
        try:
            result = worker.run()
        except BaseException as exc:  # a bug in the loop itself: stop the process (docs/architecture.md#worker-thread-loop)
            log.error("thread.crashed", exc_info=exc, extra={"worker": worker.worker_id})
            result = ThreadResult(worker.worker_id, exc)
        try:
            self.live.retire(worker.worker_id)
        except Exception as exc:
            log_event(
                log,
                "thread.cleanup_failed",
                logging.WARNING,
                worker=worker.worker_id,
                error=str(exc),
            )
        log_event(log, "thread.exit", worker=worker.worker_id, error=result.error or "")
        self._results.put(result)

    def _wait_for_threads(self) -> None:
        remaining = len(self.worker_ids)
        while remaining:
            try:
                # A timeout keeps the main thread responsive to signals.
                result = self._results.get(timeout=0.2)
            except queue.Empty:
                continue
            remaining -= 1
            if result.error is not None and not self.shutdown.is_set():
                log_event(
                    log,
                    "worker.stopping",
                    logging.ERROR,
                    worker=result.worker_id,
                    error=str(result.error) or type(result.error).__name__,
                )
                self.stop(EXIT_ERROR)

    def _unregister_leftovers(self) -> None:
        leftovers = self.live.ids
        if not leftovers:
            return
        try:
            unregister_workers(self.db, leftovers)
        except Exception as exc:
            log_event(log, "worker.cleanup_failed", logging.WARNING, error=str(exc))

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._on_signal)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log_event(log, "worker.signal", signal=name, action="stopping")
            self.stop(EXIT_SIGNAL)
            return
        log_event(log, "worker.signal", logging.WARNING, signal=name, action="exit now")
        self._forced_exit()

    def _forced_exit(self) -> None:
        """Release our jobs (bounded in time) and leave without waiting for the threads."""
        released: list[Any] = []

        def release() -> None:
            released.append(unregister_workers(self.db, self.worker_ids))

        helper = threading.Thread(target=release, daemon=True)
        helper.start()
        helper.join(FORCED_EXIT_GRACE)
        log_event(log, "worker.exit", code=EXIT_SIGNAL, forced=True, released=sum(released))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_SIGNAL)
