"""CLI commands `prep retry` (failed jobs back to ready) and `workers list` (the fleet)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from dataset_worker.cli.common import (
    JsonOpt,
    PrepArg,
    database,
    fail,
    print_json,
    settings,
    table_console,
    wake_workers,
)
from dataset_worker.cli.prep import prep_app
from dataset_worker.durations import DurationError, parse_duration

# rich is imported inside the functions so that loading the CLI stays fast (see cli/common.py).
if TYPE_CHECKING:
    pass

workers_app = typer.Typer(
    help="The worker threads registered in the database.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add `prep retry` and the `workers` command group."""
    prep_app.command("retry")(retry_command)
    app.add_typer(workers_app, name="workers")
    workers_app.command("list")(workers_list_command)


def retry_command(
    ctx: typer.Context,
    prep: PrepArg,
    job_type: Annotated[
        str | None, typer.Option("--type", help="Only jobs of this type: scan, pack or daggen.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make the failed (error) jobs ready again, with a fresh attempts budget."""
    from dataset_worker.prep.retry import retry_jobs

    with database(ctx) as db:
        views = retry_jobs(db, prep, job_type)
    if views:
        wake_workers(ctx)
    if as_json:
        print_json([view.model_dump(mode="json", by_alias=True) for view in views])
        return
    which = f"{job_type} " if job_type else ""
    if not views:
        typer.echo(f'no {which}job of preparation "{prep}" is in error; nothing changed')
        return
    jobs = ", ".join(f"{view.id} ({view.type.value})" for view in views)
    typer.echo(f'{len(views)} job(s) of preparation "{prep}" are ready again: {jobs}')


def workers_list_command(
    ctx: typer.Context,
    stale_after: Annotated[
        str,
        typer.Option(
            metavar="DURATION", help="A worker silent this long is shown as stale (Go syntax)."
        ),
    ] = "20s",
    as_json: JsonOpt = False,
) -> None:
    """List every worker thread in the database (any machine): alive or stale, and its jobs."""
    from rich.markup import escape
    from rich.table import Table

    from dataset_worker.prep.fleet import list_workers

    try:
        seconds = parse_duration(stale_after)
    except DurationError as exc:
        fail(f"--stale-after: {exc}", 2)
    if seconds <= 0:
        fail(f"--stale-after must be a positive duration, got {stale_after}", 2)
    with database(ctx) as db:
        reply = list_workers(db, stale_after=seconds, managed=_managed_process(ctx))
    if as_json:
        print_json(reply.model_dump(mode="json", by_alias=True))
        return
    if not reply.workers:
        typer.echo("no workers are registered (none runs, or all have stopped)")
        return
    table = Table(title="Workers")
    for column in ("ID", "Host", "PID", "Started", "Last heartbeat", "Status", "Managed", "Jobs"):
        table.add_column(column, justify="right" if column == "PID" else "left")
    for worker in reply.workers:
        table.add_row(
            worker.id[:8],
            escape(worker.hostname),
            str(worker.pid) if worker.pid is not None else "",
            _time(worker.started_at),
            _time(worker.last_heartbeat),
            worker.status,
            "yes" if worker.managed else "",
            ", ".join(f"{job.id} {job.type.value} ({job.state.value})" for job in worker.jobs),
        )
    table_console().print(table)


def _managed_process(ctx: typer.Context) -> tuple[str, int] | None:
    """(hostname, pid) of the worker the admin server of this state dir runs now, if any."""
    from dataset_worker.manager.procinfo import is_alive
    from dataset_worker.manager.runrecord import WorkerPaths, read_record

    record = read_record(WorkerPaths(settings(ctx).state_dir).record)
    if record is None or record.ended or not is_alive(record.identity):
        return None
    return record.hostname, record.pid


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")
