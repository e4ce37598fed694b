"""CLI command: `dataset-worker cid FILE` prints the Singularity-compatible CID of a file."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from dataset_worker.cli.common import fail
from dataset_worker.content.chunker import DEFAULT_RANGE_SIZE, ShortReadError, stream_file_cid
from dataset_worker.content.cid import cid_to_str

RANGE_SIZE = DEFAULT_RANGE_SIZE  # Singularity's split size with its default max size (§4.2)
PROGRESS_MIN_SIZE = 64 << 20  # below this a bar would only flicker


def cid_command(
    file: Annotated[Path, typer.Argument(help="The file whose content to address.")],
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"cid": …, "size": …} instead of the CID.')
    ] = False,
) -> None:
    """Print the CID Singularity gives this file's content (1 MiB raw leaves, 1 GiB ranges)."""
    try:
        with open(file, "rb") as stream:
            info = os.fstat(stream.fileno())
            if not stat.S_ISREG(info.st_mode):
                fail(f"{file}: not a regular file")
            size = info.st_size
            with _progress(size, file.name) as advance:
                cid = stream_file_cid(
                    stream, size, range_size=RANGE_SIZE, label=str(file), on_progress=advance
                )
    except IsADirectoryError:
        fail(f"{file}: is a directory; give a regular file")
    except FileNotFoundError:
        fail(f"{file}: no such file")
    except ShortReadError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{file}: cannot read: {exc.strerror or exc}")
    if as_json:
        typer.echo(json.dumps({"cid": cid_to_str(cid), "size": size}))
    else:
        typer.echo(cid_to_str(cid))


@contextmanager
def _progress(size: int, name: str) -> Iterator[Callable[[int], object] | None]:
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


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("cid")(cid_command)
