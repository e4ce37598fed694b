"""The worker's read-ahead choice for pack jobs, and how it reaches the job's context."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from dataset_worker.db import Database
from dataset_worker.db.models import JobType
from dataset_worker.worker.config import WorkerConfig
from dataset_worker.worker.context import JobContext, StopSignal
from dataset_worker.worker.pack_tuning import choose_read_ahead, usable_cpus, with_read_ahead
from dataset_worker.worker.process import WorkerProcess


@pytest.mark.parametrize(
    ("concurrency", "cpus", "expected"),
    [(1, 2, True), (2, 2, False), (3, 2, False), (1, 1, False), (3, 4, True), (4, 4, False)],
)
def test_read_ahead_only_while_a_core_is_left(concurrency: int, cpus: int, expected: bool) -> None:
    assert choose_read_ahead(concurrency, cpus) is expected


def test_usable_cpus_follows_the_affinity_mask() -> None:
    assert usable_cpus() == len(os.sched_getaffinity(0))
    assert choose_read_ahead(usable_cpus()) is False
    assert choose_read_ahead(usable_cpus() - 1) is (usable_cpus() > 1)


@pytest.mark.parametrize("read_ahead", [True, False])
def test_the_wrapped_handler_sees_the_choice_and_the_same_signals(read_ahead: bool) -> None:
    seen: list[JobContext] = []
    ctx = JobContext(None, 7, JobType.PACK, 3, "w", logging.getLogger("test"))  # type: ignore[arg-type]
    with_read_ahead(seen.append, read_ahead)(ctx)
    [got] = seen
    assert got.read_ahead is read_ahead
    assert (got.job_id, got.worker_id) == (7, "w")
    assert got.shutdown is ctx.shutdown and got.stop is ctx.stop
    assert isinstance(got.stop, StopSignal) and isinstance(got.shutdown, threading.Event)


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_the_process_passes_its_choice_to_pack_jobs(db: Database, concurrency: int) -> None:
    seen: list[JobContext] = []
    process = WorkerProcess(
        db, WorkerConfig(concurrency=concurrency), handlers={JobType.PACK: seen.append}
    )
    expected = concurrency < usable_cpus()
    assert process.pack_read_ahead is expected
    process.handlers[JobType.PACK](JobContext(db, 1, JobType.PACK, 1, "w", logging.getLogger("t")))
    assert [ctx.read_ahead for ctx in seen] == [expected]
