"""What the routes work with: settings, database, worker manager and audit log of one server."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request, Response
from pydantic import BaseModel

from dataset_worker.api.replycache import ReplyCache
from dataset_worker.api.statusreply import StatusReplies
from dataset_worker.config import Settings
from dataset_worker.db import Database
from dataset_worker.manager.audit import AuditLog
from dataset_worker.manager.manager import WorkerManager
from dataset_worker.wakeup import ring


@dataclass(frozen=True)
class Services:
    """Shared by every request of one app."""

    settings: Settings
    db: Database
    manager: WorkerManager
    audit: AuditLog
    job_replies: ReplyCache = field(default_factory=lambda: ReplyCache(None))
    status_replies: StatusReplies = field(default_factory=StatusReplies)

    def wake_workers(self) -> None:
        """Work was queued: wake the idle workers of this state dir (the managed one among
        them) now rather than at their next poll (PostgreSQL also notifies every worker)."""
        ring(self.settings.state_dir)


async def services(request: Request) -> Services:
    """FastAPI dependency: the app's services (async: a sync dependency costs a thread hop)."""
    return app_services(request)


def app_services(request: Request) -> Services:
    """The services of the app serving `request`."""
    found = request.app.state.services
    assert isinstance(found, Services)
    return found


def json_reply(model: BaseModel, status_code: int = 200) -> Response:
    """A reply serialised once, by pydantic's Rust core: returning a Response spares FastAPI
    re-validating the model against the route's response_model (the route still declares it
    for the OpenAPI document)."""
    return Response(
        model.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json"
    )


def remote_address(request: Request) -> str | None:
    """The client's address, for the audit log."""
    return request.client.host if request.client else None
