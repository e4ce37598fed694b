"""CLI command: `dataset-worker cid FILE` prints the Singularity-compatible CID of a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dataset_worker.cli.common import database, fail, file_progress, reading_regular_file
from dataset_worker.sizes import next_power_of_two

# Singularity's split size with its default max size (docs/formats.md#cutting-files-into-ranges): content.chunker's
# DEFAULT_RANGE_SIZE, repeated here so that loading the CLI does not import the chunker.
RANGE_SIZE = 1 << 30


def range_size_for(max_size: int) -> int:
    """The range length a scan uses for a preparation of `max_size`:
    `min(NextPowerOfTwo(maxSize) / 4, 1 GiB)` (worker/jobs/scan/batching.py)."""
    return max(min(next_power_of_two(max_size) // 4, RANGE_SIZE), 1)


def cid_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The file whose content to address.")],
    prep: Annotated[
        str | None,
        typer.Option(
            "--prep",
            metavar="PREP",
            help="Give the CID this file has in preparation PREP (name or id): its max size "
            "decides how the file is cut (reads the database).",
        ),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size",
            metavar="SIZE",
            help="Give the CID this file has in a preparation of this max size (as --prep, "
            "without the database).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"cid": …, "size": …} instead of the CID.')
    ] = False,
) -> None:
    """Print the CID Singularity gives this file's content (1 MiB raw leaves, 1 GiB ranges).

    A preparation cuts a file into ranges of min(next power of two of its max size / 4, 1 GiB)
    and joins their CIDs: 1 GiB with the default max size (31.5 GiB), as here. With a smaller
    max size, a file larger than that range size gets another CID in the preparation: give
    --prep NAME (or --max-size SIZE) to get that one. Piece size and min piece size never
    change a file's CID.
    """
    from dataset_worker.content.chunker import ShortReadError, stream_file_cid
    from dataset_worker.content.cid import cid_to_str

    if prep is not None and max_size is not None:
        fail("give --prep or --max-size, not both (a preparation has its own max size)")
    range_size = RANGE_SIZE
    if max_size is not None:
        from dataset_worker.prep.create import validate_sizes
        from dataset_worker.prep.errors import InvalidParameter

        try:  # the rules of a preparation's max size: the same CID only for a size it allows
            range_size = range_size_for(validate_sizes(max_size, None, None).max_size)
        except InvalidParameter as exc:
            fail(f"--max-size: {exc}")
    elif prep is not None:
        range_size = range_size_for(_max_size_of(ctx, prep))
    with reading_regular_file(file) as (stream, size), file_progress(size, file.name) as advance:
        try:
            cid = stream_file_cid(
                stream, size, range_size=range_size, label=str(file), on_progress=advance
            )
        except ShortReadError as exc:  # the file shrank while being read
            fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"cid": cid_to_str(cid), "size": size}))
    else:
        typer.echo(cid_to_str(cid))


def _max_size_of(ctx: typer.Context, prep: str) -> int:
    from dataset_worker.prep.lookup import find_preparation

    with database(ctx) as db, db.read() as session:
        return find_preparation(session, prep).max_size


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("cid")(cid_command)
