from __future__ import annotations

import pytest

from dataset_worker.db import Database
from dataset_worker.db.models import JobState, JobType
from dataset_worker.db.queue import claim_next_job, complete_job, fail_job, release_job
from tests.integration.worker_support import add_job, job, make_attachment, new_worker, set_state


@pytest.fixture
def claimed(db: Database) -> tuple[int, str]:
    attachment = make_attachment(db)
    job_id = add_job(db, attachment, JobType.PACK)
    me = new_worker(db)
    assert claim_next_job(db, me, [JobType.PACK]) is not None
    return job_id, me


def test_complete_clears_owner_and_sets_finish_time(db: Database, claimed: tuple[int, str]) -> None:
    job_id, me = claimed
    assert complete_job(db, job_id, me)
    row = job(db, job_id)
    assert (row.state, row.worker_id, row.error_message) == (JobState.COMPLETE, None, "")
    assert row.finished_at is not None


def test_fail_records_message_and_trace(db: Database, claimed: tuple[int, str]) -> None:
    job_id, me = claimed
    assert fail_job(db, job_id, me, "disk full", "Traceback …")
    row = job(db, job_id)
    assert (row.state, row.worker_id) == (JobState.ERROR, None)
    assert (row.error_message, row.error_stack_trace) == ("disk full", "Traceback …")
    assert row.finished_at is not None


def test_release_makes_the_job_ready_again(db: Database, claimed: tuple[int, str]) -> None:
    job_id, me = claimed
    assert release_job(db, job_id, me)
    row = job(db, job_id)
    assert (row.state, row.worker_id, row.started_at) == (JobState.READY, None, None)


@pytest.mark.parametrize("write", [complete_job, release_job])
def test_a_paused_job_is_left_paused(db: Database, claimed: tuple[int, str], write: object) -> None:
    job_id, me = claimed
    set_state(db, job_id, JobState.PAUSED)
    assert not write(db, job_id, me)  # type: ignore[operator]
    row = job(db, job_id)
    # Pause keeps the owner (docs/architecture.md#job-states-and-transitions).
    assert (row.state, row.worker_id) == (JobState.PAUSED, me)


def test_another_owners_job_is_not_touched(db: Database, claimed: tuple[int, str]) -> None:
    job_id, me = claimed
    assert release_job(db, job_id, me)
    thief = new_worker(db)
    assert claim_next_job(db, thief, [JobType.PACK]) is not None
    assert not complete_job(db, job_id, me)
    assert not fail_job(db, job_id, me, "late", "")
    row = job(db, job_id)
    assert (row.state, row.worker_id, row.error_message) == (JobState.PROCESSING, thief, "")
