"""CLI command: `dataset-worker cid FILE` prints the Singularity-compatible CID of a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dataset_worker.cli.common import fail, file_progress, reading_regular_file

# Singularity's split size with its default max size (docs/formats.md#cutting-files-into-ranges): content.chunker's
# DEFAULT_RANGE_SIZE, repeated here so that loading the CLI does not import the chunker.
RANGE_SIZE = 1 << 30


def cid_command(
    file: Annotated[Path, typer.Argument(help="The file whose content to address.")],
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"cid": …, "size": …} instead of the CID.')
    ] = False,
) -> None:
    """Print the CID Singularity gives this file's content (1 MiB raw leaves, 1 GiB ranges)."""
    from dataset_worker.content.chunker import ShortReadError, stream_file_cid
    from dataset_worker.content.cid import cid_to_str

    with reading_regular_file(file) as (stream, size), file_progress(size, file.name) as advance:
        try:
            cid = stream_file_cid(
                stream, size, range_size=RANGE_SIZE, label=str(file), on_progress=advance
            )
        except ShortReadError as exc:  # the file shrank while being read
            fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"cid": cid_to_str(cid), "size": size}))
    else:
        typer.echo(cid_to_str(cid))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("cid")(cid_command)
