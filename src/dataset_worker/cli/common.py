"""Options and helpers shared by all commands."""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, cast

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

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


PROGRESS_MIN_SIZE = 64 << 20  # below this a bar would only flicker


@contextmanager
def reading_regular_file(
    path: Path, *, buffering: int = -1
) -> Iterator[tuple[io.BufferedReader | io.FileIO, int]]:
    """Open a regular file for reading and yield (stream, size).

    Any failure to open or read it, inside the block too, exits with a message naming the file.
    """
    try:
        with open(path, "rb", buffering=buffering) as stream:
            info = os.fstat(stream.fileno())
            if not stat.S_ISREG(info.st_mode):
                fail(f"{path}: not a regular file")
            yield cast("io.BufferedReader | io.FileIO", stream), info.st_size
    except IsADirectoryError:
        fail(f"{path}: is a directory; give a regular file")
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except PermissionError:
        fail(f"{path}: cannot read: permission denied")
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror or exc}")


@contextmanager
def file_progress(size: int, name: str) -> Iterator[Callable[[int], object] | None]:
    """A rich progress bar on stderr for large files on a terminal; otherwise nothing."""
    if size < PROGRESS_MIN_SIZE or not sys.stderr.isatty():
        yield None
        return
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(name, total=size)
        yield lambda n: progress.advance(task, n)
