"""What the routes work with: settings, database, worker manager and audit log of one server."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Response
from pydantic import BaseModel

from dataset_worker.config import Settings
from dataset_worker.db import Database
from dataset_worker.manager.audit import AuditLog
from dataset_worker.manager.manager import WorkerManager


@dataclass(frozen=True)
class Services:
    """Shared by every request of one app."""

    settings: Settings
    db: Database
    manager: WorkerManager
    audit: AuditLog


async def services(request: Request) -> Services:
    """FastAPI dependency: the app's services (async: a sync dependency costs a thread hop)."""
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
