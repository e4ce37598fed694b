"""The one owner of job state: every transition of a `jobs` row (docs/architecture.md#job-states-and-transitions).

Nothing else in the project writes `jobs.state` (tests/unit/test_queue_single_writer.py checks
it). Each function states its SQL and its locking rule in its docstring.

| from → to | function |
|---|---|
| (none) → ready | `control.insert_ready` (prep create, first start, the auto chain's daggen), `control.insert_ready_many` (the scan's pack jobs) |
| (none) → created | `control.insert_created` (the scan's pack job being filled) |
| created → ready | `control.make_ready` with `FILLED_FROM` (the scan's pack job, once full) |
| created, paused, error, complete → ready | `control.make_ready` (starts, `prep retry`, the auto chain) |
| ready, processing → paused | `control.pause` (pauses, delete) |
| ready (due), ownerless processing → processing | `claim.claim_next_job` |
| processing → complete (+ the auto-chain hook, same transaction) | `outcomes.complete_job`; `handover.hand_over` in a job body's own last transaction, which also claims the thread's next job |
| processing → error | `outcomes.fail_job`, `outcomes.fail_or_retry` |
| processing → ready after a backoff | `outcomes.fail_or_retry` |
| processing → ready (owner's release) | `outcomes.release_job` |
| processing → ready (dead workers) | `release.release_jobs_of_workers`, `release.reap_stale_workers`, `release.release_jobs_of_process` |
"""

from __future__ import annotations

from dataset_worker.db.queue.claim import (
    ClaimedJob,
    claim_next_job,
    failed_since,
    seconds_until_retry,
    work_left,
)
from dataset_worker.db.queue.control import (
    FILLED_FROM,
    FRESH_START,
    JOB_COLUMNS,
    PACK_START_FROM,
    PAUSE_FROM,
    REQUEUE_FROM,
    RETRY_FROM,
    START_FROM,
    insert_created,
    insert_ready,
    insert_ready_many,
    make_ready,
    pause,
)
from dataset_worker.db.queue.handover import Claimer, Handover, hand_over
from dataset_worker.db.queue.outcomes import (
    CompletionHook,
    Failure,
    FailureRecord,
    RetryRule,
    complete_job,
    fail_job,
    fail_or_retry,
    release_job,
)
from dataset_worker.db.queue.release import (
    ProcessGone,
    ReapResult,
    reap_stale_workers,
    release_jobs_of_process,
    release_jobs_of_workers,
)

__all__ = [
    "FILLED_FROM",
    "FRESH_START",
    "JOB_COLUMNS",
    "PACK_START_FROM",
    "PAUSE_FROM",
    "REQUEUE_FROM",
    "RETRY_FROM",
    "START_FROM",
    "ClaimedJob",
    "Claimer",
    "CompletionHook",
    "Failure",
    "FailureRecord",
    "Handover",
    "ProcessGone",
    "ReapResult",
    "RetryRule",
    "claim_next_job",
    "complete_job",
    "fail_job",
    "fail_or_retry",
    "failed_since",
    "hand_over",
    "insert_created",
    "insert_ready",
    "insert_ready_many",
    "make_ready",
    "pause",
    "reap_stale_workers",
    "release_job",
    "release_jobs_of_process",
    "release_jobs_of_workers",
    "seconds_until_retry",
    "work_left",
]
