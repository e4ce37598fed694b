"""CLI commands `prep explore` (browse a preparation's source as scanned) and `prep delete`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dataset_worker.cli.common import (
    JsonOpt,
    PrepArg,
    counted,
    database,
    print_json,
    table_console,
)
from dataset_worker.cli.prep import prep_app
from dataset_worker.defaults import DEFAULT_EXPLORE_LIMIT, MAX_EXPLORE_LIMIT
from dataset_worker.sizes import format_size

# rich and the use-cases are imported inside the functions so that loading the CLI stays fast
# (see cli/common.py).
if TYPE_CHECKING:
    from rich.table import Table

    from dataset_worker.prep.delete import DeleteReport
    from dataset_worker.prep.explore import ExplorePage

DEFAULT_LIMIT, MAX_LIMIT = DEFAULT_EXPLORE_LIMIT, MAX_EXPLORE_LIMIT

# Singular and plural words for the counts of a delete, in the order they are printed.
COUNT_WORDS = {
    "preparations": ("preparation", "preparations"),
    "storages": ("storage", "storages"),
    "jobs": ("job", "jobs"),
    "directories": ("folder", "folders"),
    "files": ("file", "files"),
    "file_ranges": ("file range", "file ranges"),
    "cars": ("piece", "pieces"),
    "car_blocks": ("CAR block", "CAR blocks"),
    "car_files": ("CAR file", "CAR files"),
    "unrecorded_car_files": ("unrecorded CAR file", "unrecorded CAR files"),
    "source_attachments": ("source attachment", "source attachments"),
    "output_attachments": ("output attachment", "output attachments"),
}


def register(_app: typer.Typer) -> None:
    """Add `explore` and `delete` to the `prep` command group."""
    prep_app.command("explore")(explore_command)
    prep_app.command("delete")(delete_command)


# --- explore --------------------------------------------------------------------------------------


def explore_command(
    ctx: typer.Context,
    prep: PrepArg,
    path: Annotated[
        str, typer.Argument(metavar="[PATH]", help="Folder inside the source (default: the root).")
    ] = "",
    limit: Annotated[
        int, typer.Option("--limit", help=f"Entries per page, 1 to {MAX_LIMIT}.")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The next cursor printed by the previous page.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List a folder of the source as the scan recorded it: size, CID, pieces, sha256."""
    from dataset_worker.prep.explore import explore

    with database(ctx) as db:
        page = explore(db, prep, path, limit=limit, cursor=cursor)
    if as_json:
        print_json(page.model_dump(mode="json", by_alias=True))
        return
    console = table_console()
    console.print(_explore_table(page))
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}", highlight=False)


def _explore_table(page: ExplorePage) -> Table | str:
    from rich.markup import escape
    from rich.table import Table

    where = f'"{page.preparation}" /{page.path}'
    if not page.entries:
        return f"{escape(where)}: empty folder (not in the DAG: empty folders are not part of a dataset)"
    table = Table(title=escape(f"{where} (folder CID {page.cid or 'not yet'})"))
    table.add_column("Name", overflow="fold")
    table.add_column("Size", justify="right")
    table.add_column("CID", no_wrap=True)
    table.add_column("Pieces", no_wrap=True)
    table.add_column("SHA-256", overflow="fold")
    for entry in page.entries:
        table.add_row(
            escape(entry.name + ("/" if entry.is_dir else "")),
            "" if entry.size is None else format_size(entry.size),
            escape(entry.cid or ("empty folder (not in the DAG)" if entry.empty else "-")),
            escape("\n".join(entry.piece_cids) or "-"),
            escape(entry.sha256 or "-"),
        )
    return table


# --- delete ---------------------------------------------------------------------------------------


def delete_command(
    ctx: typer.Context,
    prep: PrepArg,
    delete_cars: Annotated[
        bool,
        typer.Option(
            "--delete-cars",
            help="Also remove its CAR files (<pieceCID>.car of its pieces; nothing else).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a preparation: its jobs, folders, files, pieces and its own storages."""
    from rich.markup import escape

    from dataset_worker.prep import get_preparation_status
    from dataset_worker.prep.delete import delete_preparation

    with database(ctx) as db:
        if not yes:
            status = get_preparation_status(db, prep)
            what = (
                f'Delete preparation "{status.name}" (id {status.id}): '
                f"{counted(status.files_scanned, 'file')}, {counted(status.pieces, 'piece')}, "
                f"{counted(status.total_jobs(), 'job')}"
                + (", and its CAR files" if delete_cars else " (CAR files are kept)")
                + "?"
            )
            if not typer.confirm(what, err=True):
                typer.echo("nothing deleted", err=True)
                raise typer.Exit(1)
        report = delete_preparation(db, prep, delete_cars=delete_cars)
    if as_json:
        print_json(report.model_dump(mode="json", by_alias=True))
        return
    table_console().print(escape(_summary(report)), highlight=False)


def _summary(report: DeleteReport) -> str:
    removed = report.removed
    counts = [
        _count(getattr(removed, field), *words)
        for field, words in COUNT_WORDS.items()
        if getattr(removed, field)
    ]
    text = f'Deleted preparation "{report.name}" (id {report.id}): ' + (
        ", ".join(counts) or "nothing left to remove"
    )
    if report.kept_storages:
        text += f"; kept storages used by other preparations: {', '.join(report.kept_storages)}"
    return text


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"
