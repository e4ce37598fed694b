"""Helpers for the worker runtime tests: minimal preparations, jobs and worker rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from dataset_worker.db import Database
from dataset_worker.db.models import (
    Job,
    JobState,
    JobType,
    Preparation,
    SourceAttachment,
    Storage,
    Worker,
    utcnow,
)
from dataset_worker.worker.runtime.registry import register_workers

HARNESS = Path(__file__).with_name("worker_harness.py")


def make_attachment(db: Database, name: str = "prep") -> int:
    """A preparation with one source attachment (rows only; no folders needed)."""
    with db.write() as session:
        storage = Storage(name=f"{name}-source", path="/nonexistent")
        prep = Preparation(name=name, max_size=1 << 20, piece_size=1 << 21, min_piece_size=1 << 20)
        attachment = SourceAttachment(preparation=prep, storage=storage)
        session.add(attachment)
        session.flush()
        return attachment.id


def add_job(
    db: Database,
    attachment_id: int | None,
    job_type: JobType,
    state: JobState = JobState.READY,
    worker_id: str | None = None,
) -> int:
    with db.write() as session:
        job = Job(type=job_type, state=state, attachment_id=attachment_id, worker_id=worker_id)
        session.add(job)
        session.flush()
        return job.id


def add_jobs(db: Database, attachment_id: int, job_type: JobType, count: int) -> list[int]:
    with db.write() as session:
        jobs = [
            Job(type=job_type, state=JobState.READY, attachment_id=attachment_id)
            for _ in range(count)
        ]
        session.add_all(jobs)
        session.flush()
        return [job.id for job in jobs]


def new_worker(db: Database) -> str:
    worker_id = str(uuid.uuid4())
    register_workers(db, [worker_id])
    return worker_id


def age_worker(db: Database, worker_id: str, seconds: float) -> None:
    """Pretend the worker's last heartbeat was `seconds` ago."""
    with db.write() as session:
        session.execute(
            update(Worker)
            .where(Worker.id == worker_id)
            .values(last_heartbeat=utcnow() - timedelta(seconds=seconds))
        )


def job(db: Database, job_id: int) -> Job:
    with db.read() as session:
        row = session.get(Job, job_id)
        assert row is not None
        session.expunge(row)
        return row


def set_state(db: Database, job_id: int, state: JobState) -> None:
    with db.write() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state=state))


def worker_ids(db: Database) -> set[str]:
    with db.read() as session:
        return set(session.scalars(select(Worker.id)))


class WorkerProcessUnderTest:
    """A spawned `dataset-worker run` (or harness, when `mode` is given), output in a file."""

    def __init__(self, tmp_path: Path, database_url: str, mode: str | None, *args: str) -> None:
        self.log = tmp_path / f"worker-{time.monotonic_ns()}.log"
        program = ["-m", "dataset_worker"] if mode is None else [str(HARNESS), mode]
        command = [
            sys.executable,
            *program,
            "--database-url",
            database_url,
            "--state-dir",
            str(tmp_path / "state"),
            "run",
            *args,
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"worker did not exit within {timeout}s:\n{self.output()}"
            ) from None

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)


Spawn = Callable[..., WorkerProcessUnderTest]


@contextmanager
def spawner(tmp_path: Path, database_url: str) -> Iterator[Spawn]:
    """Start worker processes with `spawn(mode, *run_args)`; any still running at exit are killed."""
    started: list[WorkerProcessUnderTest] = []

    def spawn(mode: str | None, *args: str) -> WorkerProcessUnderTest:
        worker = WorkerProcessUnderTest(tmp_path, database_url, mode, *args)
        started.append(worker)
        return worker

    try:
        yield spawn
    finally:
        for worker in started:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()
