"""Options and helpers shared by all commands."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from dataset_worker.config import ENV_DATABASE_URL, ENV_STATE_DIR, Settings, load_settings


def root_callback(
    ctx: typer.Context,
    state_dir: Annotated[
        str | None,
        typer.Option(envvar=ENV_STATE_DIR, help="State directory (default ./.dataset-worker)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar=ENV_DATABASE_URL,
            help="Database URL: sqlite:///PATH or postgresql://… (default: SQLite in the state dir).",
        ),
    ] = None,
) -> None:
    """Prepare datasets for Filecoin storage deals and run the dataset worker."""
    ctx.obj = load_settings(state_dir, database_url)


def settings(ctx: typer.Context) -> Settings:
    """The settings resolved by the root callback."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear error to stderr and exit non-zero."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
