"""One worker thread: claim, run, record, back off (docs/architecture.md#worker-thread-loop).

Differences from Singularity, on purpose: outcome writes are ownership-checked (a job paused or
taken over meanwhile is left alone), a job that finishes while the process shuts down is still
recorded as complete, and a failure to record an outcome releases the job instead of leaving it
`processing` under a live owner. A job body may complete its job in its own last transaction
(`JobContext.finish`, db/queue/handover.py), which also claims the thread's next job: the thread
then starts that job at once, and releases it if it stops first. A transient failure (retry.py) sends the job back to `ready`
after a backoff, up to `max_attempts`; with exit-on-complete a thread waits for such retries
instead of leaving them behind. Completion hooks (the auto chain) run in the transaction that
marks a job complete.
"""

from __future__ import annotations

import enum
import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import JobType
from dataset_worker.db.queue import (
    ClaimedJob,
    Claimer,
    CompletionHook,
    Failure,
    FailureRecord,
    Handover,
    claim_next_job,
    complete_job,
    fail_or_retry,
    hand_over,
    release_job,
    seconds_until_retry,
    work_left,
)
from dataset_worker.logs import log_event
from dataset_worker.worker.runtime.config import WorkerConfig
from dataset_worker.worker.runtime.context import Handler, JobContext
from dataset_worker.worker.runtime.monitor import JobMonitor
from dataset_worker.worker.runtime.retry import is_transient
from dataset_worker.worker.runtime.wakeup import Doorbell

log = logging.getLogger("dataset_worker.worker")
job_log = logging.getLogger("dataset_worker.job")
RETRY_SLACK = 0.05  # seconds past a retry's due time before polling again (clock granularity)
# An exit-on-complete thread waiting for jobs running elsewhere looks again after 0.1 s, doubling
# to 1 s: the end of another process's job rings nobody, and `prepare` waits on exactly that.
WAITING_POLL = (0.1, 1.0)


def next_interval(current: float, maximum: float) -> float:
    """The sleep after `current`: doubled, capped at `maximum` (5, 10, 20, … 160, 160 …)."""
    return min(current * 2, maximum)


class Backoff:
    """Interval that doubles while idle or failing and resets after a success or a pause."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.current = minimum

    def reset(self) -> None:
        """Back to the minimum (after a successful or a paused job)."""
        self.current = self.minimum

    def advance(self) -> float:
        """Return the interval to sleep now, and double it for next time."""
        interval = self.current
        self.current = next_interval(self.current, self.maximum)
        return interval


def _nothing() -> None:
    pass


class Outcome(enum.Enum):
    """What became of one claimed job."""

    COMPLETED = "completed"  # row written `complete`
    FAILED = "failed"  # row written `error` (or the handler's failure could not be recorded)
    RETRIED = "retried"  # transient failure: row written back to `ready`, due after a backoff
    RELEASED = "released"  # shutdown: row written back to `ready`
    STOPPED = "stopped"  # paused / taken over: row not written


@dataclass(frozen=True)
class ThreadResult:
    """How a thread ended: `error` is set when it must stop the whole process (exit 1)."""

    worker_id: str
    error: BaseException | None = None


class WorkerThread:
    """The loop of one worker thread, with its own `workers` row id."""

    def __init__(
        self,
        db: Database,
        config: WorkerConfig,
        handlers: Mapping[JobType, Handler],
        worker_id: str,
        shutdown: threading.Event,
        monitor: JobMonitor,
        *,
        read_ahead: bool = True,
        completion_hooks: Mapping[JobType, CompletionHook] | None = None,
        hostname: str | None = None,
        doorbell: Doorbell | None = None,
        queued: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.completion_hooks = dict(completion_hooks or {})
        self.hostname = hostname if hostname is not None else socket.gethostname()
        # Handed to pack jobs; runtime/config.py choose_read_ahead decides it.
        self.read_ahead = read_ahead
        self.config = config
        self.handlers = handlers
        self.worker_id = worker_id
        self.shutdown = shutdown
        self.monitor = monitor
        # Rung when work is queued (runtime/wakeup.py): an idle sleep ends at once.
        self.doorbell = doorbell
        # What a job calls after it queued work: by default it wakes this process's threads;
        # WorkerProcess also wakes the other processes of its state dir.
        self.queued = queued or (doorbell.ring if doorbell is not None else _nothing)
        self.claimer = Claimer(worker_id, self.hostname, config.job_types, config.attachments)
        # The job a job body's last transaction claimed for this thread (`_Finisher`): run next.
        self._ahead: ClaimedJob | None = None

    def run(self) -> ThreadResult:
        """Work until shutdown, exit-on-complete or (with exit-on-error) the first error."""
        try:
            return self._loop()
        finally:
            self._release_ahead()

    def _loop(self) -> ThreadResult:
        backoff = Backoff(self.config.min_interval, self.config.max_interval)
        waiting_poll = Backoff(*WAITING_POLL)
        types, scope = self.config.job_types, self.config.attachments
        while not self.shutdown.is_set():
            try:
                ticket = self._ticket()  # a ring during the claim still wakes us
                job, self._ahead = self._ahead, None
                if job is None:
                    job = claim_next_job(self.db, self.worker_id, types, self.hostname, scope)
                retry_in = seconds_until_retry(self.db, types, scope) if job is None else None
                waiting = job is None and self._work_left()
            except Exception as exc:
                log_event(log, "claim.error", logging.ERROR, worker=self.worker_id, error=str(exc))
                error: BaseException = exc
            else:
                if job is None:
                    if self.config.exit_on_complete and retry_in is None and not waiting:
                        log_event(log, "thread.done", worker=self.worker_id, reason="no work")
                        return ThreadResult(self.worker_id)
                    interval = backoff.advance()
                    if retry_in is not None:  # wake up when a retry falls due
                        interval = min(interval, retry_in + RETRY_SLACK)
                    if waiting:  # look again soon: the job ends, or a reaper releases it
                        interval = min(interval, waiting_poll.advance())
                    else:
                        waiting_poll.reset()
                    # Waiting polls are frequent and short: only worth a line at debug level.
                    level = logging.DEBUG if waiting else logging.INFO
                    log_event(log, "worker.idle", level, worker=self.worker_id, sleep=interval)
                    if self._idle(ticket, interval):
                        break
                    continue
                outcome, failure = self.process(job)
                # A job's end may have queued the next one (the auto chain's daggen), and it is
                # what exit-on-complete threads elsewhere wait for: wake them.
                self.queued()
                if outcome is Outcome.RELEASED:
                    break
                if outcome is not Outcome.FAILED:
                    backoff.reset()  # no sleep after a success or a stopped job
                    continue
                assert failure is not None
                error = failure
            # ERROR (docs/architecture.md#worker-thread-loop): exit-on-error ends everything, else sleep and keep doubling.
            if self.shutdown.is_set():
                break
            if self.config.exit_on_error:
                return ThreadResult(self.worker_id, error)
            if self.shutdown.wait(backoff.advance()):
                break
        return ThreadResult(self.worker_id)

    def _ticket(self) -> int:
        return self.doorbell.ticket() if self.doorbell is not None else 0

    def _idle(self, ticket: int, seconds: float) -> bool:
        """Sleep while idle, until work is queued (a ring), shutdown or `seconds`; True on
        shutdown."""
        if self.doorbell is None:
            return self.shutdown.wait(seconds)
        return self.doorbell.sleep(ticket, seconds, self.shutdown)

    def _work_left(self) -> bool:
        """With exit-on-complete, a job of our types and preparations that is ready, or still
        `processing` elsewhere, keeps the thread: its worker may die (a reaper then makes it
        ready) or create more jobs (a scan)."""
        if not self.config.exit_on_complete:
            return False
        return work_left(self.db, self.config.job_types, self.worker_id, self.config.attachments)

    def process(self, job: ClaimedJob) -> tuple[Outcome, BaseException | None]:
        """Run one claimed job and record its outcome (ownership-checked)."""
        log_event(
            log,
            "job.claimed",
            job=job.id,
            type=job.type,
            attachment=job.attachment_id,
            worker=self.worker_id,
        )
        stop = self.monitor.register(job.id, self.worker_id)
        finisher = _Finisher(self, job)
        ctx = JobContext(
            db=self.db,
            job_id=job.id,
            job_type=job.type,
            attachment_id=job.attachment_id,
            worker_id=self.worker_id,
            logger=job_log,
            shutdown=self.shutdown,
            stop=stop,
            read_ahead=self.read_ahead,
            queued=self.queued,
            finish=finisher,
        )
        started = time.monotonic()
        try:
            self._handler(job.type)(ctx)
        except Exception as exc:
            handed = finisher.committed()
            if handed is not None:
                return self._handed_over(job, handed, time.monotonic() - started, exc)
            return self._after_failure(job, exc, stop.reason if stop.is_set() else "")
        finally:
            self.monitor.unregister(job.id)
        handed = finisher.committed()
        if handed is not None:
            return self._handed_over(job, handed, time.monotonic() - started)
        return self._record(job, Outcome.COMPLETED, seconds=time.monotonic() - started)

    def _handed_over(
        self, job: ClaimedJob, handover: Handover, seconds: float, late: Exception | None = None
    ) -> tuple[Outcome, BaseException | None]:
        """The job body's own transaction completed the job (or found it no longer ours) and
        claimed the next one: keep that one, and write nothing more. An error the body raised
        after that commit (`late`) cannot undo the completion: it is logged."""
        self._ahead = handover.next_job
        fields: dict[str, Any] = {"job": job.id, "type": job.type, "worker": self.worker_id}
        if not handover.completed:
            log_event(log, "job.not_owned", logging.WARNING, outcome="completed", **fields)
            return Outcome.STOPPED, None
        if late is not None:
            log_event(log, "job.failed_after_complete", logging.WARNING, error=str(late), **fields)
        log_event(log, "job.complete", seconds=round(seconds, 3), **fields)
        return Outcome.COMPLETED, None

    def _handler(self, job_type: JobType) -> Handler:
        handler = self.handlers.get(job_type)
        if handler is None:
            raise LookupError(f"this worker has no handler for {job_type} jobs")
        return handler

    def _after_failure(
        self, job: ClaimedJob, exc: Exception, stop_reason: str
    ) -> tuple[Outcome, BaseException | None]:
        if stop_reason:
            # Paused or taken over: the row belongs to someone else now; write nothing.
            log_event(log, "job.stopped", job=job.id, worker=self.worker_id, reason=stop_reason)
            return Outcome.STOPPED, None
        if self.shutdown.is_set():
            # Whatever the handler raised while we shut down, the job goes back to the queue.
            return self._record(job, Outcome.RELEASED)
        return self._record_failure(job, exc)

    def _record_failure(
        self, job: ClaimedJob, exc: Exception
    ) -> tuple[Outcome, BaseException | None]:
        """Write the failed attempt: back to `ready` (transient, attempts left) or `error`."""
        message = str(exc) or type(exc).__name__
        trace = "".join(traceback.format_exception(exc))
        fields: dict[str, Any] = {"job": job.id, "type": job.type, "worker": self.worker_id}
        transient = is_transient(exc)
        try:
            record = fail_or_retry(
                self.db,
                job.id,
                self.worker_id,
                message,
                trace,
                transient=transient,
                policy=self.config.retry_policy,
            )
        except Exception as write_error:
            log_event(
                log,
                "job.record_failed",
                logging.ERROR,
                outcome=Outcome.FAILED.value,
                error=str(write_error),
                **fields,
            )
            self._release_quietly(job)
            return Outcome.FAILED, write_error
        outcome = self._report_failure(record, message, transient, fields)
        return outcome, exc if outcome is Outcome.FAILED else None

    def _report_failure(
        self, record: FailureRecord, message: str, transient: bool, fields: dict[str, Any]
    ) -> Outcome:
        """Log what `fail_or_retry` wrote; return the outcome it means for the thread."""
        if record.kind is Failure.NOT_OWNED:
            log_event(log, "job.not_owned", logging.WARNING, outcome=Outcome.FAILED.value, **fields)
            return Outcome.STOPPED
        if record.kind is Failure.RETRY:
            log_event(
                log,
                "job.retry",
                logging.WARNING,
                error=message,
                attempts=record.attempts,
                max_attempts=self.config.max_attempts,
                delay=round(record.delay, 3),
                **fields,
            )
            return Outcome.RETRIED
        log_event(
            log,
            "job.error",
            logging.ERROR,
            error=message,
            attempts=record.attempts,
            transient=transient,
            **fields,
        )
        return Outcome.FAILED

    def _record(
        self,
        job: ClaimedJob,
        outcome: Outcome,
        *,
        seconds: float = 0.0,
    ) -> tuple[Outcome, BaseException | None]:
        """Write COMPLETED or RELEASED if the row is still ours; a row that is not is left alone
        (STOPPED). A completion runs the job type's completion hook in the same transaction."""
        fields: dict[str, Any] = {"job": job.id, "type": job.type, "worker": self.worker_id}
        try:
            if outcome is Outcome.COMPLETED:
                hook = self.completion_hooks.get(job.type)
                written = complete_job(self.db, job.id, self.worker_id, hook)
            else:
                written = release_job(self.db, job.id, self.worker_id)
        except Exception as exc:
            log_event(
                log,
                "job.record_failed",
                logging.ERROR,
                outcome=outcome.value,
                error=str(exc),
                **fields,
            )
            self._release_quietly(job)
            return Outcome.FAILED, exc
        if not written:
            log_event(log, "job.not_owned", logging.WARNING, outcome=outcome.value, **fields)
            return Outcome.STOPPED, None
        if outcome is Outcome.COMPLETED:
            log_event(log, "job.complete", seconds=round(seconds, 3), **fields)
        else:
            log_event(log, "job.released", reason="shutdown", **fields)
        return outcome, None

    def _release_ahead(self) -> None:
        """Put back the job claimed ahead that this thread will not run now (it stops)."""
        job, self._ahead = self._ahead, None
        if job is not None:
            self._release_quietly(job, reason="claimed ahead, not started")

    def _release_quietly(self, job: ClaimedJob, reason: str = "record failed") -> None:
        try:
            if release_job(self.db, job.id, self.worker_id):
                log_event(log, "job.released", job=job.id, worker=self.worker_id, reason=reason)
        except Exception as exc:
            log_event(log, "job.release_failed", logging.ERROR, job=job.id, error=str(exc))


class _Finisher:
    """`JobContext.finish` for one job: `hand_over` in the body's transaction, remembering the
    last call's result (a retried transaction calls it again; only a commit makes it count)."""

    def __init__(self, thread: WorkerThread, job: ClaimedJob) -> None:
        self._thread = thread
        self._job = job
        self._handover: Handover | None = None

    def __call__(self, session: Session) -> None:
        thread = self._thread
        self._handover = hand_over(
            session,
            thread.db,
            self._job.id,
            thread.claimer,
            thread.completion_hooks.get(self._job.type),
            claim_next=not thread.shutdown.is_set(),
        )

    def committed(self) -> Handover | None:
        """The handover, once its transaction committed; None if there was none or it did
        not commit (the runtime then records the outcome itself)."""
        handover = self._handover
        return handover if handover is not None and handover.committed else None
