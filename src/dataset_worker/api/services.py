"""What the routes work with: settings, database, worker manager and audit log of one server."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

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


def services(request: Request) -> Services:
    """FastAPI dependency: the app's services."""
    found = request.app.state.services
    assert isinstance(found, Services)
    return found


def remote_address(request: Request) -> str | None:
    """The client's address, for the audit log."""
    return request.client.host if request.client else None
