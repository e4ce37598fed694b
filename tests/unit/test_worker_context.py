from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from dataset_worker.db import Database
from dataset_worker.db.models import JobType
from dataset_worker.worker.runtime.context import JobCancelled, JobContext, StopSignal


def make_context(tmp_path: Path) -> JobContext:
    db = Database(f"sqlite:///{tmp_path / 'unused.db'}")
    return JobContext(db, 7, JobType.PACK, 3, "w", logging.getLogger("test"))


def test_not_cancelled_by_default(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    assert not ctx.cancelled
    ctx.check_cancelled()


def test_shutdown_cancels(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    ctx.shutdown.set()
    assert ctx.cancelled
    with pytest.raises(JobCancelled, match="job 7 cancelled: worker is shutting down"):
        ctx.check_cancelled()


def test_stop_signal_cancels_with_its_first_reason(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    ctx.stop.set("job was paused")
    ctx.stop.set("second reason is ignored")
    with pytest.raises(JobCancelled) as info:
        ctx.check_cancelled()
    assert (info.value.job_id, info.value.reason) == (7, "job was paused")


def test_shared_shutdown_event_reaches_every_context(tmp_path: Path) -> None:
    shutdown = threading.Event()
    contexts = [
        JobContext(
            Database(f"sqlite:///{tmp_path / 'x.db'}"),
            job_id,
            JobType.SCAN,
            1,
            "w",
            logging.getLogger("t"),
            shutdown=shutdown,
            stop=StopSignal(),
        )
        for job_id in (1, 2)
    ]
    shutdown.set()
    assert all(ctx.cancelled for ctx in contexts)
