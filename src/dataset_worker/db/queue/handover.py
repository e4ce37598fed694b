"""processing → complete, and the same thread's next claim, inside a job body's last write transaction.

A pack job records its CAR in one write transaction that holds SQLite's only write lock for most
of a second (worker/jobs/pack/record.py). With the completion and the next claim written after
it, each in its own transaction, two worker processes fell into step: one's completion or claim
waited behind the other's whole recording, so both then packed at the same time and wanted the
lock at the same time again. Written inside the recording they cannot wait, and the thread leaves
the lock with its next job in hand: it packs while the other process records. It also closes
the window in which a job was recorded but not yet marked complete.

The writes are `complete_in` and `claim_in`, the same as `complete_job` and `claim_next_job`
make. What they did counts only once the caller's transaction has committed: a `Handover` says
so (`committed`), set by the session's commit itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.orm import Session

from dataset_worker.db.engine import Database
from dataset_worker.db.models import JobType
from dataset_worker.db.queue.claim import ClaimedJob, claim_in
from dataset_worker.db.queue.outcomes import CompletionHook, complete_in


@dataclass(frozen=True)
class Claimer:
    """Who claims the next job, and which jobs: a worker thread's claim arguments."""

    worker_id: str
    hostname: str
    types: Sequence[JobType]
    attachments: Sequence[int] = field(default=())


@dataclass
class Handover:
    """What `hand_over` wrote: whether the job was still ours and so is now complete, and the
    job claimed next (None: none was due, or no claim was asked for). `committed` turns True
    when the transaction that holds these writes commits; until then they may yet roll back."""

    completed: bool
    next_job: ClaimedJob | None
    committed: bool = False

    def _on_commit(self, _session: Session) -> None:
        self.committed = True


def hand_over(
    session: Session,
    db: Database,
    job_id: int,
    claimer: Claimer,
    on_complete: CompletionHook | None = None,
    *,
    claim_next: bool = True,
) -> Handover:
    """Complete `job_id` (ownership-checked, `on_complete` run after it) and, if it was ours and
    `claim_next`, claim the thread's next job, all in `session`'s transaction.

    SQL and locking: those of `complete_job`, then of `claim_next_job` (its FOR UPDATE SKIP
    LOCKED on PostgreSQL; on SQLite the caller's BEGIN IMMEDIATE already holds the lock)."""
    completed = complete_in(session, job_id, claimer.worker_id, on_complete)
    next_job = None
    if completed and claim_next:
        next_job = claim_in(
            session, db, claimer.worker_id, claimer.types, claimer.hostname, claimer.attachments
        )
    handover = Handover(completed, next_job)
    event.listen(session, "after_commit", handover._on_commit, once=True)
    return handover
