"""CLI commands: `serve` (the admin server) and `demo` (the same, over a sample preparation)."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
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
PublicUrl = Annotated[
    str | None,
    typer.Option(
        help="Base URL of the content provider (e.g. https://pieces.example.org): the page "
        "shows each piece at <URL>/piece/<pieceCid>.",
    ),
]
PieceCidVersion = Annotated[
    int,
    typer.Option(
        "--piece-cid-version",
        metavar="N",
        help="Piece CID version of the page's piece links: 1 (baga…) or 2 (FRC-0069, bafkzcib…, "
        "which also binds the payload size; the content provider serves both).",
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
    public_url: PublicUrl = None,
    piece_cid_version: PieceCidVersion = 1,
) -> None:
    """Run the admin server: HTTP API (OpenAPI at /openapi.json, docs at /docs) and web page."""
    _set_public_url(public_url, piece_cid_version)
    run_server(settings(ctx), host, port, stop_worker_on_exit, access_log, workers, demo=False)


def demo(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Port = 9090,
    stop_worker_on_exit: StopOnExit = False,
    access_log: AccessLog = True,
    workers: Workers = 1,
    public_url: PublicUrl = None,
    piece_cid_version: PieceCidVersion = 1,
) -> None:
    """Like serve, with a demo preparation over a small sample folder in the state dir."""
    _set_public_url(public_url, piece_cid_version)
    run_server(settings(ctx), host, port, stop_worker_on_exit, access_log, workers, demo=True)


def _set_public_url(public_url: str | None, piece_cid_version: int = 1) -> None:
    """Check --public-url and --piece-cid-version and hand them to the app (and its other
    processes) by the environment."""
    from dataset_worker.publicurl import (
        ENV_PIECE_CID_VERSION,
        ENV_PUBLIC_URL,
        PIECE_CID_VERSIONS,
        normalize_public_url,
    )

    if piece_cid_version not in PIECE_CID_VERSIONS:
        fail(f"--piece-cid-version must be 1 or 2, got {piece_cid_version}", 2)
    os.environ[ENV_PIECE_CID_VERSION] = str(piece_cid_version)
    if public_url is not None:
        try:
            os.environ[ENV_PUBLIC_URL] = normalize_public_url(public_url)
        except ValueError as exc:
            fail(str(exc), 2)


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
    from dataset_worker.api.auth import (
        AdminTokenError,
        configured_token,
        resolve_admin_token,
        token_path,
    )
    from dataset_worker.db import open_database

    setup_logging("INFO")
    _quiet_library_logs()
    # The server keeps its token, worker logs, pid file and audit log here, whatever the database.
    resolved.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not is_loopback(host) and configured_token(resolved.state_dir) is None:
            fail(
                f"refusing to bind {host}, which other machines can reach, without an admin "
                f"token: set {ENV_ADMIN_TOKEN}, or start once on 127.0.0.1 to generate "
                f"{token_path(resolved.state_dir)}"
            )
        token = resolve_admin_token(resolved.state_dir)
    except AdminTokenError as exc:
        fail(str(exc))
    check_port_free(host, port)
    if demo:
        _ensure_demo(resolved)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    typer.echo(f"dataset-worker admin server: {url} (API docs: {url}docs)")
    path = token_path(resolved.state_dir)
    if demo:  # a development server: show the token every time, so never "shown once"
        where = {"env": f"from {ENV_ADMIN_TOKEN}", "file": f"from {path}"}
        typer.echo(f"admin token ({where.get(token.source, f'new, kept in {path}')}):")
        typer.echo(f"  {token.value}")
    elif token.source == "generated":  # only now: later starts read it from the file
        typer.echo(f"admin token (shown once; kept in {path}):")
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


def check_port_free(host: str, port: int) -> None:
    """Exit with a clear message when uvicorn could not listen on host:port (it would only
    print an errno): bind a socket the way uvicorn does, then let it go."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            fail(f"cannot listen on {address}: {_bind_problem(exc, port)}")
        except UnicodeError:  # a host name that is not even a name
            fail(f"cannot listen on {address}: {host!r} is not a valid address or host name")


def _bind_problem(exc: OSError, port: int) -> str:
    other = port + 1 if port < 65535 else 9090
    choose = f"choose another port with --port {other} (or `make run PORT={other}`)"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is already in use (by another server or program); {choose}"
    if exc.errno == errno.EACCES:
        return f"permission denied for port {port} (ports below 1024 need privileges); {choose}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "that address does not belong to this machine; give one of its own with --host"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror}; give an address with --host"
    return f"{exc.strerror or exc}; {choose}"


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
