"""db/queue/handover.py: a job completed, and the thread's next job claimed, in the caller's transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dataset_worker.db import Database, queue
from dataset_worker.db.models import Job, JobState, JobType
from tests.integration.worker_support import make_attachment, new_worker

PACK = [JobType.PACK]


def _row(db: Database, job_id: int) -> tuple[JobState, str | None]:
    with db.read() as session:
        row = session.execute(select(Job.state, Job.worker_id).where(Job.id == job_id)).one()
    return row.state, row.worker_id


def _two_jobs(db: Database) -> tuple[int, int]:
    attachment = make_attachment(db)
    with db.write() as session:
        return (
            queue.insert_ready(session, JobType.PACK, attachment),
            queue.insert_ready(session, JobType.PACK, attachment),
        )


def _claimer(worker: str) -> queue.Claimer:
    return queue.Claimer(worker, "host-h", PACK)


def test_the_job_is_completed_and_the_next_claimed_in_one_commit(db: Database) -> None:
    first, second = _two_jobs(db)
    me = new_worker(db)
    assert queue.claim_next_job(db, me, PACK).id == first  # type: ignore[union-attr]
    hooked: list[int] = []
    with db.write() as session:
        handover = queue.hand_over(
            session, db, first, _claimer(me), lambda _s, done: hooked.append(done)
        )
        # Written but not yet committed: nothing counts until the commit.
        assert handover.completed and not handover.committed
        assert handover.next_job is not None and handover.next_job.id == second
    assert handover.committed
    assert hooked == [first]
    assert _row(db, first) == (JobState.COMPLETE, None)
    assert _row(db, second) == (JobState.PROCESSING, me)
    with db.read() as session:
        host = session.scalar(select(Job.last_worker_host).where(Job.id == second))
    assert host == "host-h"


def test_a_rolled_back_handover_changes_nothing(db: Database) -> None:
    first, second = _two_jobs(db)
    me = new_worker(db)
    queue.claim_next_job(db, me, PACK)
    with pytest.raises(RuntimeError, match="the recording failed"), db.write() as session:
        handover = queue.hand_over(session, db, first, _claimer(me))
        raise RuntimeError("the recording failed")
    assert not handover.committed
    assert _row(db, first) == (JobState.PROCESSING, me)
    assert _row(db, second) == (JobState.READY, None)


def test_a_job_no_longer_ours_is_not_completed_and_claims_nothing(db: Database) -> None:
    first, second = _two_jobs(db)
    me, other = new_worker(db), new_worker(db)
    queue.claim_next_job(db, other, PACK)
    with db.write() as session:
        handover = queue.hand_over(session, db, first, _claimer(me))
    assert handover.committed and not handover.completed and handover.next_job is None
    assert _row(db, first) == (JobState.PROCESSING, other)
    assert _row(db, second) == (JobState.READY, None)


def test_without_claim_next_only_the_completion_is_written(db: Database) -> None:
    first, second = _two_jobs(db)
    me = new_worker(db)
    queue.claim_next_job(db, me, PACK)
    with db.write() as session:
        handover = queue.hand_over(session, db, first, _claimer(me), claim_next=False)
    assert handover.committed and handover.completed and handover.next_job is None
    assert _row(db, first) == (JobState.COMPLETE, None)
    assert _row(db, second) == (JobState.READY, None)


def test_the_claim_keeps_to_the_claimers_types_and_preparations(db: Database) -> None:
    mine, elsewhere = make_attachment(db), make_attachment(db, "elsewhere")
    with db.write() as session:
        first = queue.insert_ready(session, JobType.PACK, mine)
        # Lower ids than `second`, so only the type and preparation filters pass them over.
        foreign = queue.insert_ready(session, JobType.PACK, elsewhere)
        scan = queue.insert_ready(session, JobType.SCAN, mine)
        second = queue.insert_ready(session, JobType.PACK, mine)
    me = new_worker(db)
    queue.claim_next_job(db, me, PACK, attachments=[mine])
    with db.write() as session:
        handover = queue.hand_over(session, db, first, queue.Claimer(me, "host-h", PACK, (mine,)))
    assert handover.next_job is not None and handover.next_job.id == second
    assert _row(db, foreign) == (JobState.READY, None)
    assert _row(db, scan) == (JobState.READY, None)
