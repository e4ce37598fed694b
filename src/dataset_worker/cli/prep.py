"""CLI commands `prep …` and `jobs list`: thin wrappers over the dataset_worker.prep use-cases.

Each command opens the database, calls one use-case, and prints either rich tables or, with
`--json`, the use-case's view serialised with camelCase keys. A PrepError becomes one clear
sentence on stderr and exit code 1.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dataset_worker.cli.common import (
    JsonOpt,
    PrepArg,
    database,
    dump_view,
    fail,
    print_json,
    table_console,
    wake_workers,
)
from dataset_worker.defaults import (
    DEFAULT_JOBS_LIMIT,
    DEFAULT_MAX_SIZE,
    DEFAULT_MIN_PIECE_SIZE,
    MAX_JOBS_LIMIT,
)
from dataset_worker.sizes import format_size

# Only for annotations: rich, pydantic, SQLAlchemy and the use-cases are imported inside the
# functions that use them, so loading the CLI stays fast (see cli/common.py).
if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.progress_bar import ProgressBar

    from dataset_worker.db import Database
    from dataset_worker.db.models import JobType
    from dataset_worker.prep import JobView, PreparationStatus, PreparationView

DEFAULT_LIMIT, MAX_LIMIT = DEFAULT_JOBS_LIMIT, MAX_JOBS_LIMIT

WATCH_INTERVAL = 1.0  # seconds between refreshes of `prep status --watch`
EXIT_INTERRUPTED = 130

prep_app = typer.Typer(
    help="Create preparations, start or pause their jobs, and see their progress and pieces.",
    no_args_is_help=True,
)
jobs_app = typer.Typer(help="List the jobs in the database.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `prep` and `jobs` command groups to the app."""
    app.add_typer(prep_app, name="prep")
    app.add_typer(jobs_app, name="jobs")


# --- prep create / list ---------------------------------------------------------------------------


@prep_app.command("create")
def create_command(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help='Unique name: 1-64 of A-Z a-z 0-9 . _ - (not starting with ".", not all digits).',
        ),
    ],
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Folder to prepare (must exist), or a named storage: NAME[:/sub/path].",
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            help="Folder for the CAR files (created if missing), or a storage: NAME[:/path]. "
            "Without it the preparation is inline: no CAR files, pieces are rebuilt from the "
            "source when served.",
        ),
    ] = None,
    max_size: Annotated[
        str, typer.Option("--max-size", metavar="SIZE", help="Largest CAR file.")
    ] = DEFAULT_MAX_SIZE,
    piece_size: Annotated[
        str | None,
        typer.Option(
            "--piece-size",
            metavar="SIZE",
            help="Piece size, a power of two ≤ 64GiB (default: next power of two ≥ max size).",
        ),
    ] = None,
    min_piece_size: Annotated[
        str,
        typer.Option("--min-piece-size", metavar="SIZE", help="Pad smaller pieces up to this."),
    ] = DEFAULT_MIN_PIECE_SIZE,
    no_dag: Annotated[
        bool, typer.Option("--no-dag", help="Do not build the directory DAG (no root CID).")
    ] = False,
    delete_after_export: Annotated[
        bool,
        typer.Option("--delete-after-export", help="Delete source files once they are packed."),
    ] = False,
    no_file_hash: Annotated[
        bool,
        typer.Option(
            "--no-file-hash", help="Do not record each file's sha256 while packing (manifests)."
        ),
    ] = False,
    no_auto: Annotated[
        bool,
        typer.Option(
            "--no-auto",
            help="Do not chain the steps: start the scan and the daggen yourself "
            "(default: the scan is queued now and the daggen after the last pack job).",
        ),
    ] = False,
    auto_rescan: Annotated[
        bool,
        typer.Option(
            "--auto-rescan",
            help="When a pack fails on a source file that changed or vanished, rescan by itself "
            "to re-plan the work (as `prep rescan` does).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a preparation of a local folder (sizes like 31.5GiB, 1MiB or bytes)."""
    from rich.markup import escape

    from dataset_worker.prep import CreatePreparationRequest, create_preparation

    request = CreatePreparationRequest(
        name=name,
        source=source,
        output=output,
        max_size=max_size,
        piece_size=piece_size,
        min_piece_size=min_piece_size,
        no_dag=no_dag,
        delete_after_export=delete_after_export,
        no_file_hash=no_file_hash,
        no_auto=no_auto,
        auto_rescan=auto_rescan,
    )
    with database(ctx) as db:
        view = create_preparation(db, request)
    wake_workers(ctx)  # its scan is queued (unless --no-auto)
    _warn_small_max_size(view)
    if as_json:
        print_json(dump_view(view))
        return
    console = table_console()
    # Names and paths are not rich markup: escape them.
    console.print(f'Created preparation "{escape(view.name)}" (id {view.id})')
    for label, storages in (("source", view.source_storages), ("output", view.output_storages)):
        for storage in storages:
            console.print(f"  {label}: {escape(storage.path)}", highlight=False)
    if not view.output_storages:
        console.print("  output: none (inline: pieces are rebuilt from the source when served)")
    console.print(
        f"  max size {format_size(view.max_size)}, piece size {format_size(view.piece_size)}, "
        f"min piece size {format_size(view.min_piece_size)}"
        + (", no DAG" if view.no_dag else "")
        + (", delete after export" if view.delete_after_export else "")
        + ("" if view.file_hash else ", no file hash")
        + (", auto rescan" if view.auto_rescan else ""),
        highlight=False,
    )
    if view.auto_chain:
        console.print(
            "Scan queued; a running worker (`dataset-worker run`) scans, packs and builds the "
            f"DAG by itself. Progress: dataset-worker prep status {escape(view.name)}",
            highlight=False,
        )
    else:
        console.print(f"Next: dataset-worker prep start-scan {escape(view.name)}", highlight=False)


def _warn_small_max_size(view: PreparationView) -> None:
    """On stderr: how many pack jobs a max size below 1 MiB makes of this source."""
    from dataset_worker.prep.sizing import small_max_size_warning

    for storage in view.source_storages:
        if storage.type == "local":
            warning = small_max_size_warning(storage.path, view.max_size)
            if warning:
                typer.echo(f"warning: {warning}", err=True)


@prep_app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the preparations."""
    from dataset_worker.prep import list_preparations

    with database(ctx) as db:
        views = list_preparations(db)
    if as_json:
        print_json([dump_view(view) for view in views])
        return
    table_console().print(_preparations_table(views))


def _preparations_table(views: list[PreparationView]) -> RenderableType:
    from rich.markup import escape
    from rich.table import Table

    if not views:
        return "No preparations yet: create one with `dataset-worker prep create`."
    table = Table(title="Preparations")
    for column in ("ID", "Name", "Source", "Output", "Max size", "Piece size", "Min piece", "DAG"):
        table.add_column(column, justify="right" if column == "ID" else "left")
    for view in views:
        table.add_row(
            str(view.id),
            escape(view.name),
            "\n".join(escape(s.path) for s in view.source_storages),
            "\n".join(escape(s.path) for s in view.output_storages),
            format_size(view.max_size),
            format_size(view.piece_size),
            format_size(view.min_piece_size),
            "no" if view.no_dag else "yes",
        )
    return table


# --- prep status ----------------------------------------------------------------------------------


@prep_app.command("status")
def status_command(
    ctx: typer.Context,
    prep: PrepArg,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Refresh every second until every job is complete or in error."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show job counts per type and state, and bytes scanned and packed."""
    if not watch:
        # The JSON-ready data of a few Core reads: no ORM, no pydantic (a fast command).
        from dataset_worker.prep.status import preparation_status_data

        with database(ctx) as db:
            data = preparation_status_data(db, prep)
        if as_json:
            print_json(data)
        else:
            table_console().print(_status_view(data))
        return
    from dataset_worker.db.enums import JobState

    with database(ctx) as db:
        status = _watch(db, prep, as_json)
    if status.count(state=JobState.ERROR):
        fail(
            f'{status.count(state=JobState.ERROR)} job(s) of preparation "{status.name}" failed; '
            f"see: dataset-worker jobs list --prep {status.name} --status error"
        )


def _watch(db: Database, prep: str, as_json: bool) -> PreparationStatus:
    """Refresh until every job is complete or in error (or Ctrl-C, exit code 130)."""
    from rich.live import Live

    from dataset_worker.prep import get_preparation_status

    with _ctrl_c_flag() as interrupted:
        status = get_preparation_status(db, prep)
        if as_json:
            typer.echo(json.dumps(dump_view(status), ensure_ascii=False))
            while not _all_done(status):
                _pause(interrupted)
                status = get_preparation_status(db, prep)
                typer.echo(json.dumps(dump_view(status), ensure_ascii=False))
            return status
        with Live(_progress_view(status), console=table_console(), auto_refresh=False) as live:
            while not _all_done(status):
                _pause(interrupted)
                status = get_preparation_status(db, prep)
                live.update(_progress_view(status), refresh=True)
        return status


@contextmanager
def _ctrl_c_flag() -> Iterator[threading.Event]:
    """Ctrl-C sets the event rather than raising KeyboardInterrupt wherever the main thread
    happens to be: raised inside the database pool's locking it could leave a lock held, and the
    exit then waited on it forever (seen once in CI)."""
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: interrupted.set())
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _pause(interrupted: threading.Event) -> None:
    """Wait for the next refresh; exit 130 on Ctrl-C."""
    if interrupted.wait(WATCH_INTERVAL):
        raise typer.Exit(EXIT_INTERRUPTED)


def _all_done(status: PreparationStatus) -> bool:
    from dataset_worker.db.models import JobState

    total = status.total_jobs()
    finished = status.count(state=JobState.COMPLETE) + status.count(state=JobState.ERROR)
    return total > 0 and finished == total


def _status_view(status: dict[str, Any]) -> RenderableType:
    """The tables of `prep status`, from the status's JSON-ready data."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    counts = Table(title=f'Preparation "{escape(status["name"])}" (id {status["id"]})')
    counts.add_column("Job type")
    states_of: dict[str, dict[str, int]] = status["jobs"]
    for state in next(iter(states_of.values())):
        counts.add_column(state, justify="right")
    counts.add_column("total", justify="right")
    for job_type, states in states_of.items():
        counts.add_row(job_type, *(str(n) for n in states.values()), str(sum(states.values())))
    return Group(counts, _totals(status))


def _totals(status: dict[str, Any]) -> RenderableType:
    from rich.markup import escape
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    scanned, packed = status["bytesScanned"], status["bytesPacked"]
    grid.add_row("Stage", status["stage"] + ("" if status["autoChain"] else " (manual steps)"))
    grid.add_row("Files scanned", str(status["filesScanned"]))
    # Data bytes: the source files' bytes (`prep pieces` has the CAR files' sizes).
    grid.add_row("Data bytes scanned", f"{format_size(scanned)} ({scanned})")
    grid.add_row("Data bytes packed", f"{format_size(packed)} ({packed})")
    grid.add_row("Pieces", str(status["pieces"]))
    grid.add_row("Root CID", status["rootCid"] or "(none yet: run daggen after packing)")
    error = status.get("lastError")
    if error:
        where = f"{error['type']} job {error['jobId']}" + (
            " failed"
            if error["state"] == "error"
            else f" waits for a retry ({error['attempts']} failed)"
        )
        grid.add_row("Last job error", escape(f"{where}: {error['message']}"))
    return grid


def _progress_view(status: PreparationStatus) -> RenderableType:
    from rich.markup import escape
    from rich.table import Table

    from dataset_worker.db.models import JobState, JobType

    grid = Table.grid(padding=(0, 2))
    grid.add_row(f'[bold]Preparation "{escape(status.name)}"[/bold]')
    grid.add_row("stage", status.stage)
    grid.add_row("scan", _single_job_state(status, JobType.SCAN))
    packs = status.jobs[JobType.PACK]
    done, total = packs[JobState.COMPLETE], sum(packs.values())
    failed = f", {packs[JobState.ERROR]} failed" if packs[JobState.ERROR] else ""
    grid.add_row("pack jobs", _bar(done, total), f"{done}/{total}{failed}")
    grid.add_row(
        "bytes packed",
        _bar(status.bytes_packed, status.bytes_scanned),
        f"{format_size(status.bytes_packed)} / {format_size(status.bytes_scanned)}",
    )
    grid.add_row("daggen", _single_job_state(status, JobType.DAGGEN))
    grid.add_row("pieces", str(status.pieces))
    grid.add_row("root CID", status.root_cid or "-")
    return grid


def _bar(completed: int, total: int) -> ProgressBar:
    from rich.progress_bar import ProgressBar

    # An empty total would make rich draw a pulsing bar; show an empty one instead.
    return ProgressBar(total=max(total, 1), completed=completed if total else 0, width=40)


def _single_job_state(status: PreparationStatus, job_type: JobType) -> str:
    states = [state.value for state, n in status.jobs[job_type].items() if n]
    return ", ".join(states) if states else "not started"


# --- start / pause --------------------------------------------------------------------------------


def _report_job(view: JobView, as_json: bool, prep: str) -> None:
    if as_json:
        print_json(dump_view(view))
    else:
        typer.echo(
            f'{view.type.value} job {view.id} of preparation "{prep}" is now {view.state.value}'
        )


def _report_jobs(views: list[JobView], as_json: bool, prep: str, wanted: str) -> None:
    if as_json:
        print_json([dump_view(view) for view in views])
    elif not views:
        typer.echo(f'no pack job of preparation "{prep}" was {wanted}; nothing changed')
    else:
        ids = ", ".join(str(view.id) for view in views)
        state = views[0].state.value
        typer.echo(f'{len(views)} pack job(s) of preparation "{prep}" now {state}: {ids}')


@prep_app.command("start-scan")
def start_scan_command(ctx: typer.Context, prep: PrepArg, as_json: JsonOpt = False) -> None:
    """Start the scan (or rescan: only new and changed files are added)."""
    from dataset_worker.prep import start_scan

    with database(ctx) as db:
        view = start_scan(db, prep)
    wake_workers(ctx)
    _report_job(view, as_json, prep)


@prep_app.command("rescan")
def rescan_command(ctx: typer.Context, prep: PrepArg, as_json: JsonOpt = False) -> None:
    """List the source again and re-plan around changed, grown, vanished and new files.

    Unfinished pack jobs holding a changed file are rebuilt from the current listing; completed
    pieces stay as they are; the DAG is built from the current tree.
    """
    from dataset_worker.prep import rescan_preparation

    with database(ctx) as db:
        view = rescan_preparation(db, prep)
    wake_workers(ctx)
    if as_json:
        print_json(view.model_dump(mode="json", by_alias=True))
        return
    typer.echo(
        f'rescan of preparation "{prep}" queued (scan job {view.id}); a running worker re-plans '
        "its unfinished pack jobs around the current files"
    )


@prep_app.command("pause-scan")
def pause_scan_command(ctx: typer.Context, prep: PrepArg, as_json: JsonOpt = False) -> None:
    """Pause the scan."""
    from dataset_worker.prep import pause_scan

    with database(ctx) as db:
        _report_job(pause_scan(db, prep), as_json, prep)


JobArg = Annotated[
    int | None,
    typer.Argument(metavar="[JOB]", help="Pack job id (default: every eligible pack job)."),
]


@prep_app.command("start-pack")
def start_pack_command(
    ctx: typer.Context, prep: PrepArg, job: JobArg = None, as_json: JsonOpt = False
) -> None:
    """Make pack jobs that are paused or in error ready again."""
    from dataset_worker.prep import start_pack

    with database(ctx) as db:
        views = start_pack(db, prep, job)
    wake_workers(ctx)
    _report_jobs(views, as_json, prep, "paused or in error")


@prep_app.command("pause-pack")
def pause_pack_command(
    ctx: typer.Context, prep: PrepArg, job: JobArg = None, as_json: JsonOpt = False
) -> None:
    """Pause pack jobs that are ready or processing."""
    from dataset_worker.prep import pause_pack

    with database(ctx) as db:
        _report_jobs(pause_pack(db, prep, job), as_json, prep, "ready or processing")


@prep_app.command("start-daggen")
def start_daggen_command(
    ctx: typer.Context,
    prep: PrepArg,
    force: Annotated[
        bool,
        typer.Option("--force", help="Build the DAG again even though the daggen job is complete."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start DAG generation (the directory tree and root CID), normally after packing.

    Refused when the daggen job is queued, running or done; --force redoes a done one.
    """
    from dataset_worker.prep import start_daggen

    with database(ctx) as db:
        view = start_daggen(db, prep, force=force)
    wake_workers(ctx)
    _report_job(view, as_json, prep)


@prep_app.command("pause-daggen")
def pause_daggen_command(ctx: typer.Context, prep: PrepArg, as_json: JsonOpt = False) -> None:
    """Pause DAG generation."""
    from dataset_worker.prep import pause_daggen

    with database(ctx) as db:
        _report_job(pause_daggen(db, prep), as_json, prep)


# --- pieces and jobs ------------------------------------------------------------------------------


@prep_app.command("pieces")
def pieces_command(ctx: typer.Context, prep: PrepArg, as_json: JsonOpt = False) -> None:
    """List the pieces (CAR files) with piece CID (v1 and v2), piece size, root CID and CAR
    size."""
    from rich.markup import escape
    from rich.table import Table

    from dataset_worker.prep import list_pieces

    with database(ctx) as db:
        pieces = list_pieces(db, prep)
    if as_json:
        print_json([dump_view(piece) for piece in pieces])
        return
    if not pieces:
        typer.echo(f'preparation "{prep}" has no pieces yet')
        return
    table = Table(title=f'Pieces of "{escape(prep)}"')
    for column in (
        "Type",
        "Piece CID",
        "Piece CID v2",
        "Piece size",
        "Root CID",
        "CAR size",
        "File",
    ):
        table.add_column(column, no_wrap="CID" in column)
    for piece in pieces:
        table.add_row(
            piece.piece_type.value,
            piece.piece_cid,
            piece.piece_cid_v2,
            format_size(piece.piece_size),
            piece.root_cid,
            str(piece.file_size),
            escape(piece.storage_path),
        )
    table_console().print(table)


@jobs_app.command("list")
def jobs_list_command(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option("--status", help="created, ready, paused, processing, complete or error."),
    ] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="scan, pack or daggen.")] = None,
    prep: Annotated[str | None, typer.Option("--prep", help="Preparation name or id.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", help=f"Jobs per page, 1 to {MAX_LIMIT}.")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The next cursor printed by the previous page.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first, one page at a time."""
    from rich.markup import escape
    from rich.table import Table

    # The page's JSON-ready data from one Core select: no ORM, no pydantic (a fast command).
    from dataset_worker.prep.jobs import job_page_data, parse_jobs_query

    with database(ctx) as db:
        query = parse_jobs_query(
            status=status, type=job_type, preparation=prep, limit=limit, cursor=cursor
        )
        page = job_page_data(db, query)
    if as_json:
        print_json(page)
        return
    if not page["jobs"]:
        typer.echo("no jobs match")
        return
    table = Table(title="Jobs (newest first)")
    columns = ("ID", "Type", "Status", "Preparation", "Started", "Finished", "Worker", "Tries")
    for column in (*columns, "Error (last)"):
        table.add_column(column, justify="right" if column in ("ID", "Tries") else "left")
    for item in page["jobs"]:
        table.add_row(
            str(item["id"]),
            item["type"],
            _job_status(item),
            escape(item["preparation"] or ""),
            _time(item["started"]),
            _time(item["finished"]),
            escape(_job_worker(item)),
            str(item["attempts"]) if item["attempts"] else "",
            escape(item["error"] or ""),
        )
    console = table_console()
    console.print(table)
    if page["nextCursor"]:
        console.print(f"more: --cursor {page['nextCursor']}", highlight=False)


def _time(value: str | None) -> str:
    """An RFC 3339 UTC time of the JSON data as "YYYY-MM-DD HH:MM:SS"."""
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _job_status(item: dict[str, Any]) -> str:
    """The state, and when a job waiting for a retry may run again."""
    if item["status"] == "ready" and item["nextAttemptAt"] is not None:
        return f"{item['status']} (retry at {_time(item['nextAttemptAt'])})"
    return str(item["status"])


def _job_worker(item: dict[str, Any]) -> str:
    """The worker thread holding the job, else the last one that ran it, with its host."""
    worker = item["worker"] or item["lastWorker"]
    if worker is None:
        return ""
    short = worker[:8]
    return f"{short}@{item['lastWorkerHost']}" if item["lastWorkerHost"] else short
