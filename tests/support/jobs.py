"""Helpers to drive job bodies in process, for tests and benchmarks.

`make_local_preparation` creates the rows a preparation needs (as `prep create` does, but with
every setting open, e.g. `no_inline`); `run_job` claims one job for a throw-away worker row,
runs its handler and records the outcome the way the worker runtime does.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import traceback
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from dataset_worker.content.chunker import stream_file_cid
from dataset_worker.content.directory import build_directory
from dataset_worker.db import Database
from dataset_worker.db.models import (
    Directory,
    Job,
    JobState,
    JobType,
    OutputAttachment,
    Preparation,
    SourceAttachment,
    Storage,
    Worker,
    utcnow,
)
from dataset_worker.db.queue import complete_job, fail_job, release_job
from dataset_worker.prep.create import validate_sizes
from dataset_worker.worker.runtime.context import Handler, JobCancelled, JobContext


@dataclass(frozen=True)
class PreparationRows:
    """Ids of a preparation made by `make_local_preparation`."""

    preparation_id: int
    attachment_id: int
    root_directory_id: int


def make_local_preparation(
    db: Database,
    name: str,
    source: Path,
    output: Path | None,
    *,
    max_size: int = 33_822_867_456,
    min_piece_size: int = 1 << 20,
    piece_size: int | None = None,
    no_dag: bool = False,
    no_inline: bool = False,
    delete_after_export: bool = False,
) -> PreparationRows:
    """Insert a preparation with a local source (and output, unless None) and its root dir.

    The size limits go through `prep create`'s own rules, so a default piece size here is the
    one a real preparation gets.
    """
    limits = validate_sizes(max_size, piece_size, min_piece_size)
    with db.write() as session:
        prep = Preparation(
            name=name,
            max_size=max_size,
            piece_size=limits.piece_size,
            min_piece_size=limits.min_piece_size,
            no_dag=no_dag,
            no_inline=no_inline,
            delete_after_export=delete_after_export,
        )
        attachment = SourceAttachment(
            storage=Storage(name=f"{name}-source", type="local", path=str(source), config={})
        )
        prep.source_attachments.append(attachment)
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
            prep.output_attachments.append(
                OutputAttachment(
                    storage=Storage(name=f"{name}-output", type="local", path=str(output))
                )
            )
        session.add(prep)
        session.flush()
        root = Directory(name="", parent_id=None, attachment_id=attachment.id)
        session.add(root)
        session.flush()
        return PreparationRows(prep.id, attachment.id, root.id)


def add_job(db: Database, attachment_id: int, job_type: JobType) -> int:
    """Insert a `ready` job of `job_type` (as start-scan / start-daggen would)."""
    with db.write() as session:
        job = Job(type=job_type, state=JobState.READY, attachment_id=attachment_id)
        session.add(job)
        session.flush()
        return job.id


def default_handler(job_type: JobType) -> Handler:
    """The real handler of a job type."""
    if job_type is JobType.SCAN:
        from dataset_worker.worker.jobs.scan.job import run_scan

        return run_scan
    if job_type is JobType.PACK:
        from dataset_worker.worker.jobs.pack.job import run_pack

        return run_pack
    from dataset_worker.worker.jobs.daggen.job import run_daggen

    return run_daggen


@dataclass
class JobRun:
    """The outcome of `run_job`: final state, and the exception for an error."""

    job_id: int
    state: JobState
    error: BaseException | None = None


def new_worker(db: Database) -> str:
    """Insert a `workers` row and return its id."""
    worker_id = str(uuid.uuid4())
    with db.write() as session:
        session.add(Worker(id=worker_id, last_heartbeat=utcnow(), hostname="in-process"))
    return worker_id


def run_job(
    db: Database,
    job_id: int,
    *,
    worker_id: str | None = None,
    handler: Handler | None = None,
    before: Callable[[JobContext], None] | None = None,
    shutdown: threading.Event | None = None,
) -> JobRun:
    """Claim job `job_id`, run its handler, record complete / error / ready like the runtime.

    `before` can tweak the context (e.g. set its stop signal) before the handler starts.
    """
    worker = worker_id or new_worker(db)
    with db.write() as session:
        job = session.get(Job, job_id)
        if job is None or job.attachment_id is None:
            raise LookupError(f"job {job_id} does not exist or has no attachment")
        job.state = JobState.PROCESSING
        job.worker_id = worker
        job.started_at = utcnow()
        job_type, attachment_id = job.type, job.attachment_id
    ctx = JobContext(
        db=db,
        job_id=job_id,
        job_type=job_type,
        attachment_id=attachment_id,
        worker_id=worker,
        logger=logging.getLogger("dataset_worker.job"),
        shutdown=shutdown or threading.Event(),
    )
    if before is not None:
        before(ctx)
    try:
        (handler or default_handler(job_type))(ctx)
    except JobCancelled as exc:
        release_job(db, job_id, worker)
        return JobRun(job_id, JobState.READY, exc)
    except Exception as exc:
        fail_job(db, job_id, worker, str(exc), traceback.format_exc())
        return JobRun(job_id, JobState.ERROR, exc)
    complete_job(db, job_id, worker)
    return JobRun(job_id, JobState.COMPLETE)


def run_ready_jobs(
    db: Database, job_type: JobType, *, attachment_id: int | None = None
) -> list[JobRun]:
    """Run every `ready` job of a type, lowest id first, until none is left."""
    runs: list[JobRun] = []
    worker = new_worker(db)
    while True:
        with db.read() as session:
            query = select(Job.id).where(Job.type == job_type, Job.state == JobState.READY)
            if attachment_id is not None:
                query = query.where(Job.attachment_id == attachment_id)
            job_id = session.scalar(query.order_by(Job.id).limit(1))
        if job_id is None:
            return runs
        run = run_job(db, job_id, worker_id=worker)
        runs.append(run)
        if run.state is JobState.READY:  # cancelled: running it again would loop forever
            return runs


def write_files(root: Path, files: dict[str, int | bytes], *, seed: int = 0) -> None:
    """Create files under `root`: an int makes that many deterministic pseudo-random bytes."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, int):
            content = pseudo_random_bytes(content, seed=zlib.crc32(f"{seed}:{rel}".encode()))
        path.write_bytes(content)


def pseudo_random_bytes(size: int, *, seed: int = 0) -> bytes:
    """Deterministic incompressible-looking bytes (SHA-256 in counter mode, fast enough)."""
    out = bytearray()
    counter = 0
    key = seed.to_bytes(4, "little")
    while len(out) < size:
        out += hashlib.sha256(key + counter.to_bytes(8, "little")).digest() * 32
        counter += 1
    return bytes(out[:size])


def scan_and_pack(db: Database, attachment_id: int) -> list[JobRun]:
    """Run a scan of the attachment, then every ready pack job; returns the pack runs."""
    scan = run_job(db, add_job(db, attachment_id, JobType.SCAN))
    if scan.state is not JobState.COMPLETE:
        raise RuntimeError(f"scan failed: {scan.error}")
    return run_ready_jobs(db, JobType.PACK, attachment_id=attachment_id)


def reference_root(folder: Path, range_size: int) -> tuple[bytes, int] | None:
    """Root CID and Size() of a folder computed straight from the files, with no database and
    no job: what the pack jobs' directory upkeep must arrive at. None for an empty tree."""
    entries: dict[str, tuple[bytes, int]] = {}
    for child in sorted(folder.iterdir()):
        if child.is_dir():
            sub = reference_root(child, range_size)
            if sub is not None:  # empty directories are never entries
                entries[child.name] = sub
        else:
            size = child.stat().st_size
            with open(child, "rb") as stream:
                entries[child.name] = (stream_file_cid(stream, size, range_size=range_size), size)
    if not entries:
        return None
    node = build_directory(entries)
    return node.cid, node.size
