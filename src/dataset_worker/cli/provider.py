"""CLI command: `dataset-worker content-provider` serves pieces over HTTP to storage providers.

Its own process and app, apart from the admin server; it only reads the database. Without a token
it listens on loopback only; a non-loopback address needs `--token-file` or an explicit
`--public`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dataset_worker.cli.common import fail, settings


def content_provider(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(help="Address to bind. Non-loopback needs --token-file or --public."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 7777,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="FILE",
            help="Require 'Authorization: Bearer <token>', the token being this file's content.",
        ),
    ] = None,
    public: Annotated[
        bool,
        typer.Option(
            "--public", help="Serve pieces to anyone who can reach the address, without a token."
        ),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            metavar="URL",
            help="Database to read pieces from (default: the global --database-url).",
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log one line per HTTP request.")] = False,
    verify_blocks: Annotated[
        bool,
        typer.Option(
            "--verify-blocks",
            help="Hash every block of a local CAR file while serving it and cut the transfer on "
            "a mismatch (a CAR edited in place with the same size); costs CPU, no zero-copy.",
        ),
    ] = False,
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            metavar="SECONDS",
            min=0.1,
            help="Close a connection whose request head is not complete in this time (408).",
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout",
            metavar="SECONDS",
            min=0.1,
            help="Close a connection that sends no body byte for this long while one is due.",
        ),
    ] = 30.0,
    sendfile: Annotated[
        bool,
        typer.Option(
            help="Send piece bytes with sendfile (zero-copy): about a third of the CPU per byte; "
            "on loopback it measured ~10% slower than the default 4 MiB reads."
        ),
    ] = False,
) -> None:
    """Serve pieces (CAR files) by piece CID: GET|HEAD /piece/{pieceCid}, as Boost expects."""
    import uvicorn

    from dataset_worker.cli.serve import _quiet_library_logs, is_loopback
    from dataset_worker.config import normalize_database_url
    from dataset_worker.httpguard import MAX_CONNECTIONS, guarded_protocol
    from dataset_worker.logs import setup_logging

    token = _read_token(token_file) if token_file is not None else None
    if token is None and not public and not is_loopback(host):
        fail(
            f"refusing to serve pieces on {host}, which other machines can reach, without a "
            "token: pass --token-file FILE (clients then send Authorization: Bearer <token>), "
            "or --public to serve them to anyone"
        )
    url = normalize_database_url(database_url) if database_url else settings(ctx).database_url
    setup_logging("INFO")
    _quiet_library_logs()
    app = _build_app(url, token, zero_copy=sendfile, verify_blocks=verify_blocks)
    shown_host = host if ":" not in host else f"[{host}]"
    access = "token required" if token else "open to anyone who can connect"
    typer.echo(
        f"dataset-worker content provider: http://{shown_host}:{port}/piece/{{pieceCid}} "
        f"({access}; OpenAPI at /openapi.json)"
    )
    if token is None:
        # Loopback is not a trust boundary: on a shared host every local user can connect.
        typer.echo(
            "warning: no token: every user of this host (loopback included) and anyone who can "
            f"reach {shown_host}:{port} can download every piece, and every prepared file "
            "through /ipfs/ (inline pieces are rebuilt from their source files, whatever their "
            "permissions): pass --token-file FILE on a shared host",
            err=True,
        )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": access_log,
        # uvicorn's httptools protocol (the zero-copy send path needs it) with header and body
        # timeouts and a head size limit; past MAX_CONNECTIONS connections and tasks, a 503.
        "http": guarded_protocol(header_timeout, body_timeout),
        "limit_concurrency": MAX_CONNECTIONS,
        "timeout_graceful_shutdown": 5,
    }
    uvicorn.run(app, **options)


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        fail(f"--token-file: {path}: no such file")
    except OSError as exc:
        fail(f"--token-file: {path}: cannot read: {exc.strerror or exc}")
    if not token:
        fail(f"--token-file: {path} is empty: put the token in it")
    from dataset_worker.httpedge.auth import TokenError, check_token  # the rules of both servers

    try:
        return check_token(token, f"--token-file {path}")
    except TokenError as exc:
        fail(str(exc))


def _build_app(url: str, token: str | None, *, zero_copy: bool, verify_blocks: bool) -> Any:
    """The app over a read-only use of the database at `url` (checked before serving)."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from dataset_worker.db import Database
    from dataset_worker.db.models import Car
    from dataset_worker.provider.app import create_provider_app
    from dataset_worker.provider.pieces import PieceCatalog

    db = Database(url, pool_size=8)  # never migrated here: the provider only reads
    try:
        with db.read() as session:
            session.execute(select(Car.id).limit(1)).all()
    except SQLAlchemyError as exc:
        db.dispose()
        driver_error = getattr(exc, "orig", None)  # the database's own message, when there is one
        reason = str(driver_error if driver_error is not None else exc)
        fail(f"cannot read pieces from the database: {reason.splitlines()[0]}")
    catalog = PieceCatalog(db, verify_blocks=verify_blocks)
    return create_provider_app(catalog, token=token, zero_copy=zero_copy)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("content-provider")(content_provider)
