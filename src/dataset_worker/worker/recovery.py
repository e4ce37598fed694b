"""Releasing the jobs of one process that is known to be gone (the admin server's SIGKILL)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import Worker
from dataset_worker.worker.lifecycle import release_jobs_of_workers


def release_jobs_of_process(db: Database, hostname: str, pid: int) -> int:
    """Put the `processing` jobs of every worker row of (hostname, pid) back to `ready`.

    Deletes those worker rows too, so no reaper has to wait for them to turn stale.
    Returns the number of jobs released. Call it only once the process is surely dead.
    """

    def write(session: Session) -> int:
        ids = list(
            session.scalars(
                select(Worker.id)
                .where(Worker.hostname == hostname, Worker.pid == pid)
                .with_for_update()
            )
        )
        released = release_jobs_of_workers(session, ids)
        if ids:
            session.execute(delete(Worker).where(Worker.id.in_(ids)))
        return released

    return db.run_write(write)
