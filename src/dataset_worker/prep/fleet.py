"""The fleet: every worker thread registered in the database, on any machine, and what it holds.

Shared by `dataset-worker workers list` and GET /api/workers. A worker is `stale` once its last
heartbeat is older than `stale_after` (the worker's default, 20 s), measured on the database's
clock as the reaper measures it; a stale row is about to be reaped (its jobs released).
`managed` says whether the row belongs to the worker process the admin server of this state
dir started (same host and pid as its current run).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.clock import now_expr
from dataset_worker.db.models import Job, JobState, JobType, Worker
from dataset_worker.defaults import DEFAULT_STALE_AFTER
from dataset_worker.prep.views import View, as_utc

Process = tuple[str, int]  # (hostname, pid)


class HeldJob(View):
    """A job a worker holds: processing, or paused while it ran."""

    id: int
    type: JobType
    state: JobState


class WorkerInfo(View):
    """One worker thread's row."""

    id: str
    hostname: str
    pid: int | None
    started_at: datetime
    last_heartbeat: datetime
    status: Literal["alive", "stale"] = Field(
        description="stale: no heartbeat for longer than staleAfter seconds."
    )
    alive: bool
    jobs: list[HeldJob]
    managed: bool = Field(
        description="Run by the worker process this admin server started (same host and pid)."
    )


class WorkersReply(View):
    """Every worker row, by host, process and start time."""

    workers: list[WorkerInfo]
    stale_after: float = Field(
        description="Seconds without a heartbeat after which a worker is stale."
    )


def list_workers(
    db: Database, *, stale_after: float = DEFAULT_STALE_AFTER, managed: Process | None = None
) -> WorkersReply:
    """Every `workers` row with liveness, held jobs, and whether it is the `managed` process."""
    fresh_since = now_expr(db, minus=stale_after)
    with db.read() as session:
        rows = session.execute(
            select(
                Worker.id,
                Worker.hostname,
                Worker.pid,
                Worker.started_at,
                Worker.last_heartbeat,
                (Worker.last_heartbeat >= fresh_since).label("alive"),
            ).order_by(Worker.hostname, Worker.pid, Worker.started_at, Worker.id)
        ).all()
        held: dict[str, list[HeldJob]] = defaultdict(list)
        if rows:
            jobs = session.execute(
                select(Job.worker_id, Job.id, Job.type, Job.state)
                .where(Job.worker_id.in_([row.id for row in rows]))
                .order_by(Job.id)
            )
            for worker_id, job_id, job_type, state in jobs:
                assert worker_id is not None  # selected by worker_id
                held[worker_id].append(HeldJob(id=job_id, type=job_type, state=state))
    workers = [
        WorkerInfo(
            id=row.id,
            hostname=row.hostname,
            pid=row.pid,
            started_at=as_utc(row.started_at),
            last_heartbeat=as_utc(row.last_heartbeat),
            status="alive" if row.alive else "stale",
            alive=bool(row.alive),
            jobs=held.get(row.id, []),
            managed=managed is not None and (row.hostname, row.pid) == managed,
        )
        for row in rows
    ]
    return WorkersReply(workers=workers, stale_after=stale_after)
