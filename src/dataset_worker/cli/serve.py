"""CLI commands: `serve` (the admin server) and `demo` (the same, over a sample preparation)."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

import typer

from dataset_worker.cli.common import fail, settings
from dataset_worker.config import ENV_ADMIN_TOKEN, Settings
from dataset_worker.logs import setup_logging

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
) -> None:
    """Run the admin server: HTTP API (OpenAPI at /openapi.json, docs at /docs) and web page."""
    run_server(settings(ctx), host, port, stop_worker_on_exit, access_log, demo=False)


def demo(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Port = 9090,
    stop_worker_on_exit: StopOnExit = False,
    access_log: AccessLog = True,
) -> None:
    """Like serve, with a demo preparation over a small sample folder in the state dir."""
    run_server(settings(ctx), host, port, stop_worker_on_exit, access_log, demo=True)


def run_server(
    resolved: Settings, host: str, port: int, stop_on_exit: bool, access_log: bool, *, demo: bool
) -> None:
    """Check the bind address, resolve the token, build the app and serve it with uvicorn."""
    import uvicorn

    from dataset_worker.api.app import create_app
    from dataset_worker.api.auth import configured_token, resolve_admin_token, token_path

    setup_logging("INFO")
    _quiet_library_logs()
    if not is_loopback(host) and configured_token(resolved.state_dir) is None:
        fail(
            f"refusing to bind {host}, which other machines can reach, without an admin token: "
            f"set {ENV_ADMIN_TOKEN}, or start once on 127.0.0.1 to generate "
            f"{token_path(resolved.state_dir)}"
        )
    token = resolve_admin_token(resolved.state_dir)
    if demo:
        _ensure_demo(resolved)
    app = create_app(resolved, token=token.value, stop_worker_on_shutdown=stop_on_exit)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    typer.echo(f"dataset-worker admin server: {url} (API docs: {url}docs)")
    if token.source == "generated":
        typer.echo(f"admin token (shown once; kept in {token_path(resolved.state_dir)}):")
        typer.echo(f"  {token.value}")
    elif demo:  # a development server: show the token every time
        where = ENV_ADMIN_TOKEN if token.source == "env" else token_path(resolved.state_dir)
        typer.echo(f"admin token (from {where}):")
        typer.echo(f"  {token.value}")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # keep our logfmt handlers
        access_log=access_log,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


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
    from dataset_worker.db import open_database
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
