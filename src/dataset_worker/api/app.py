"""The admin server's FastAPI app: worker control, preparations, jobs, metrics, the web page."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

import dataset_worker
from dataset_worker.api.auth import BearerAuthMiddleware, resolve_admin_token
from dataset_worker.api.bodylimit import BodySizeLimitMiddleware
from dataset_worker.api.dataversion import for_database as data_version_of
from dataset_worker.api.errors import install_error_handlers
from dataset_worker.api.fastpath import PolledRoutesMiddleware
from dataset_worker.api.metrics import make_registry
from dataset_worker.api.replycache import ReplyCache
from dataset_worker.api.routes import (
    config,
    explore,
    fleet,
    history,
    lifecycle,
    logs,
    manifest,
    ops,
    preparations,
    retries,
    storages,
    verify,
    worker,
)
from dataset_worker.api.services import Services
from dataset_worker.config import Settings
from dataset_worker.db import Database, open_database
from dataset_worker.manager.audit import AuditLog
from dataset_worker.manager.command import worker_command, worker_env
from dataset_worker.manager.manager import WorkerManager

WEB_DIR = Path(dataset_worker.__file__).parent / "web"

DESCRIPTION = """\
Run and watch the dataset worker process, and manage preparations.

Authentication: every `/api/…` endpoint and `/metrics` need `Authorization: Bearer <token>`
(DATASET_WORKER_ADMIN_TOKEN, or `<state dir>/admin-token`). Every error is
`{"error": "<sentence>", "detail": <optional>}`; a 400 adds `"errors": [{"field", "message"}]`,
one entry per invalid field.
"""


def create_app(
    settings: Settings,
    *,
    token: str | None = None,
    stop_worker_on_shutdown: bool = False,
    web_dir: Path = WEB_DIR,
) -> FastAPI:
    """Build the app for `settings` (opens and migrates the database, adopts a running worker).

    `token` defaults to the configured one (generated into the state dir on first use).
    With `stop_worker_on_shutdown`, the worker is stopped when the server shuts down; by default
    it keeps running and the next server adopts it.
    """
    admin_token = token or resolve_admin_token(settings.state_dir).value
    db = open_database(settings.database_url, pool_size=10)
    manager = WorkerManager(
        settings.state_dir,
        worker_command(settings),
        env=worker_env(settings),
        release_jobs=lambda hostname, pid: _release_jobs(db, hostname, pid),
    )
    app_services = Services(
        settings,
        db,
        manager,
        AuditLog(manager.paths.audit),
        job_replies=ReplyCache(data_version_of(db)),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if stop_worker_on_shutdown and manager.status().running:
            manager.stop()
        app_services.job_replies.close()
        db.dispose()

    # /docs and /redoc with Swagger UI and ReDoc from the installed fastapi-offline package,
    # not from a CDN: they work offline and on closed networks.
    app = FastAPIOffline(
        title="dataset-worker admin API",
        version=dataset_worker.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = app_services
    app.state.metrics_registry = make_registry(app_services)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    for module in (
        config,
        worker,
        logs,
        preparations,
        explore,
        lifecycle,
        retries,
        fleet,
        history,
        manifest,
        ops,
        storages,
        verify,
    ):
        app.include_router(module.router)
    # Last, so API routes win: the web page's files at / (404 when the folder is empty; with no
    # folder at all nothing is mounted, as StaticFiles would fail every request with a 500).
    if web_dir.is_dir():
        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    # Inside the token check (401 first): request bodies are capped at 1 MiB.
    app.add_middleware(BodySizeLimitMiddleware)
    # Inside the token check: the polled requests are answered without the router.
    app.add_middleware(PolledRoutesMiddleware, services=app_services)
    app.add_middleware(BearerAuthMiddleware, token=admin_token)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, minus the 422 replies it declares by default: validation errors are
    400 here (api/errors.py), and the document must list only codes the server really sends."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema


def _release_jobs(db: Database, hostname: str, pid: int) -> int:
    # Imported late: only needed once a worker was killed.
    from dataset_worker.db.queue import release_jobs_of_process

    return release_jobs_of_process(db, hostname or socket.gethostname(), pid)
