"""CLI command: `dataset-worker extract --root CID -o DIR CAR_OR_DIR…` rebuilds the files.

Every block is checked against its CID; hostile or broken input (unsafe names, cycles, sizes that
disagree, missing blocks) is refused before anything is written, and nothing is ever written
outside DIR; with --partial, entries that need a missing block are left out and listed instead.
Exit code 0 when the whole tree was written, 1 otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataset_worker.cli.common import counted, fail
from dataset_worker.sizes import SizeError, parse_size


def extract_command(
    sources: Annotated[
        list[Path],
        typer.Argument(
            metavar="CAR_OR_DIR...",
            help="CAR files, or folders searched (recursively) for *.car files.",
        ),
    ],
    root: Annotated[
        str, typer.Option("--root", metavar="CID", help="The root directory CID (bafy…).")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="DIR", help="Folder to write the tree into.")
    ],
    partial: Annotated[
        bool,
        typer.Option(
            "--partial",
            help="Restore every complete file even when some blocks are missing from the CARs, "
            "and list the files and folders it could not restore (exit code 1).",
        ),
    ] = False,
    max_files: Annotated[
        int,
        typer.Option(
            "--max-files",
            min=1,
            help="Refuse, before writing anything, a tree of more files and folders than this.",
        ),
    ] = 10_000_000,
    max_bytes: Annotated[
        str,
        typer.Option(
            "--max-bytes",
            metavar="SIZE",
            help="Refuse, before writing anything, a tree of more bytes than this (e.g. 2TiB); "
            "the free space is checked too.",
        ),
    ] = "1PiB",
) -> None:
    """Rebuild the files and folders under a root CID from CAR files, verifying every block.

    Empty folders are not part of a dataset (the scan keeps no DAG node for them), so they do
    not come back.
    """
    from dataset_worker.content.cid import cid_from_str
    from dataset_worker.retrieve.carindex import BlockIndex, ExtractError, MissingBlock
    from dataset_worker.retrieve.extract import extract_tree

    try:
        root_cid = cid_from_str(root)
    except ValueError as exc:
        fail(f"--root: {exc}")
    try:
        byte_limit = parse_size(max_bytes)
    except SizeError as exc:
        fail(f"--max-bytes: {exc}")
    cars = _car_files(sources)
    if output.exists() and not output.is_dir():
        fail(f"-o {output}: exists and is not a folder")
    try:
        with BlockIndex() as index:
            for car in cars:
                index.add_car(car)
            summary = extract_tree(
                index,
                root_cid,
                output,
                partial=partial,
                max_files=max_files,
                max_bytes=byte_limit,
            )
    except MissingBlock as exc:
        fail(f"{exc}; add the CAR file that holds it, or give --partial to restore the rest")
    except ExtractError as exc:
        fail(str(exc))
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}")
    typer.echo(
        f"{output}: {counted(summary.files, 'file')} ({counted(summary.bytes, 'byte')}) in "
        f"{counted(summary.directories, 'folder')}, from {counted(len(cars), 'CAR file')}; "
        "every block verified"
    )
    if summary.unrestored:
        what = counted(len(summary.unrestored), "entry", "entries")
        typer.echo(f"could not restore {what} (blocks missing from the CARs):", err=True)
        for path, reason in summary.unrestored:
            typer.echo(f"  {path!r}: {reason}", err=True)
        raise typer.Exit(1)


def _car_files(sources: list[Path]) -> list[Path]:
    """The CAR files named, and those found under the folders named, in a stable order."""
    cars: list[Path] = []
    for source in sources:
        if source.is_dir():
            found = sorted(p for p in source.rglob("*.car") if p.is_file())
            if not found:
                fail(f"{source}: no *.car files in this folder")
            cars.extend(found)
        elif source.is_file():
            cars.append(source)
        else:
            fail(f"{source}: no such file or folder")
    return cars


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("extract")(extract_command)
