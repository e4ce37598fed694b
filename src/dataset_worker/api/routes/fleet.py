"""/api/workers: every worker registered in the database, on any machine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from dataset_worker.api.errors import error_responses
from dataset_worker.api.services import Services, json_reply, services
from dataset_worker.manager.manager import WorkerManager
from dataset_worker.prep.fleet import Process, WorkersReply, list_workers

router = APIRouter(prefix="/api/workers", tags=["dataset worker"])


@router.get(
    "", response_model=WorkersReply, responses=error_responses(401), summary="Worker threads"
)
def workers(app: Annotated[Services, Depends(services)]) -> Response:
    """Every worker row: host, pid, start, heartbeat, alive or stale, the jobs it holds, and
    whether this server's manager runs it."""
    return json_reply(list_workers(app.db, managed=managed_process(app.manager)))


def managed_process(manager: WorkerManager) -> Process | None:
    """(hostname, pid) of the worker this server's manager runs now, or None."""
    status = manager.status()
    record = manager.current_record()
    if not status.running or record is None or record.pid != status.pid:
        return None
    return record.hostname, record.pid
