"""The worker's read-ahead choice for pack jobs, and how it reaches the job's context."""

from __future__ import annotations

import os

import pytest

from dataset_worker.db import Database
from dataset_worker.db.models import JobType
from dataset_worker.worker.runtime.config import WorkerConfig, choose_read_ahead, usable_cpus
from dataset_worker.worker.runtime.context import JobContext
from dataset_worker.worker.runtime.process import EXIT_OK, WorkerProcess
from tests.integration.worker_support import add_jobs, make_attachment


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


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_the_process_passes_its_choice_to_pack_jobs(db: Database, concurrency: int) -> None:
    add_jobs(db, make_attachment(db), JobType.PACK, concurrency)
    seen: list[JobContext] = []
    config = WorkerConfig(
        concurrency=concurrency, min_interval=0.01, max_interval=0.02, exit_on_complete=True
    )
    process = WorkerProcess(db, config, handlers={JobType.PACK: seen.append})
    expected = concurrency < usable_cpus()
    assert process.pack_read_ahead is expected
    assert process.run() == EXIT_OK
    assert [ctx.read_ahead for ctx in seen] == [expected] * concurrency
