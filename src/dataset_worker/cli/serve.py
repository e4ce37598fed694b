"""CLI commands: `serve` (the admin server) and `demo` (the same, over a sample preparation)."""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dataset_worker.cli.common import fail, settings
from dataset_worker.config import (
    ENV_ADMIN_TOKEN,
    ENV_DATABASE_URL,
    ENV_STATE_DIR,
    Settings,
    load_settings,
)
from dataset_worker.db import open_database
from dataset_worker.logs import setup_logging

if TYPE_CHECKING:
    from fastapi import FastAPI

GRACEFUL_SHUTDOWN_SECONDS = 5  # open log streams (SSE) would otherwise hold a shutdown forever

Host = Annotated[str, typer.Option(help="Address to bind. Non-loopback needs a configured token.")]
Port = Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")]
StopOnExit = Annotated[
    bool,
    typer.Option(
        help="Stop the worker when the server exits (default: it keeps running and the next "
        "server on this state dir adopts it)."
    ),
]
AccessLog = Annotated[bool, typer.Option(help="Log one line per HTTP request.")]
Workers = Annotated[
    int,
    typer.Option(
        min=1,
        max=32,
        help="Server processes sharing the port (they share the state dir safely).",
    ),
]
ENV_STOP_ON_EXIT = "DATASET_WORKER_STOP_WORKER_ON_EXIT"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def serve(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Port = 9090,
    stop_worker_on_exit: StopOnExit = False,
    access_log: AccessLog = True,
    workers: Workers = 1,
) -> None:
    """Run the admin server: HTTP API (OpenAPI at /openapi.json, docs at /docs) and web page."""
    run_server(settings(ctx), host, port, stop_worker_on_exit, access_log, workers, demo=False)


def demo(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Port = 9090,
    stop_worker_on_exit: StopOnExit = False,
    access_log: AccessLog = True,
    workers: Workers = 1,
) -> None:
    """Like serve, with a demo preparation over a small sample folder in the state dir."""
    run_server(settings(ctx), host, port, stop_worker_on_exit, access_log, workers, demo=True)


def run_server(
    resolved: Settings,
    host: str,
    port: int,
    stop_on_exit: bool,
    access_log: bool,
    workers: int = 1,
    *,
    demo: bool,
) -> None:
    """Check the bind address, resolve the token, build the app and serve it with uvicorn."""
    import uvicorn

    from dataset_worker.api.app import create_app
    from dataset_worker.api.auth import configured_token, resolve_admin_token, token_path

    setup_logging("INFO")
    _quiet_library_logs()
    # The server keeps its token, worker logs, pid file and audit log here, whatever the database.
    resolved.state_dir.mkdir(parents=True, exist_ok=True)
    if not is_loopback(host) and configured_token(resolved.state_dir) is None:
        fail(
            f"refusing to bind {host}, which other machines can reach, without an admin token: "
            f"set {ENV_ADMIN_TOKEN}, or start once on 127.0.0.1 to generate "
            f"{token_path(resolved.state_dir)}"
        )
    token = resolve_admin_token(resolved.state_dir)
    if demo:
        _ensure_demo(resolved)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    typer.echo(f"dataset-worker admin server: {url} (API docs: {url}docs)")
    if token.source == "generated":
        typer.echo(f"admin token (shown once; kept in {token_path(resolved.state_dir)}):")
        typer.echo(f"  {token.value}")
    elif demo:  # a development server: show the token every time
        where = ENV_ADMIN_TOKEN if token.source == "env" else token_path(resolved.state_dir)
        typer.echo(f"admin token (from {where}):")
        typer.echo(f"  {token.value}")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,  # keep our logfmt handlers
        "access_log": access_log,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }
    if workers == 1:
        app = create_app(resolved, token=token.value, stop_worker_on_shutdown=stop_on_exit)
        uvicorn.run(app, **options)
        return
    # Several processes: each builds its app from the environment (migrate once, first).
    open_database(resolved.database_url).dispose()
    os.environ.update(
        {
            ENV_STATE_DIR: str(resolved.state_dir),
            ENV_DATABASE_URL: resolved.database_url,
            ENV_STOP_ON_EXIT: "1" if stop_on_exit else "0",
        }
    )
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=workers, **options)


def app_from_environment() -> FastAPI:
    """The app of one of several server processes (uvicorn --workers), configured by run_server."""
    from dataset_worker.api.app import create_app

    setup_logging("INFO")
    _quiet_library_logs()
    stop_on_exit = os.environ.get(ENV_STOP_ON_EXIT) == "1"
    return create_app(load_settings(), stop_worker_on_shutdown=stop_on_exit)


class _DropColorMessage(logging.Filter):
    """uvicorn attaches an ANSI-coloured copy of each message; our logfmt lines do not need it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def _quiet_library_logs() -> None:
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(_DropColorMessage())
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _ensure_demo(resolved: Settings) -> None:
    from dataset_worker.prep.demo import ensure_demo_preparation

    db = open_database(resolved.database_url)
    try:
        prep = ensure_demo_preparation(db, resolved.state_dir, scan=True)
    finally:
        db.dispose()
    typer.echo(f'demo preparation "{prep.name}" over {resolved.state_dir / "demo-source"}')


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("serve")(serve)
    app.command("demo")(demo)
