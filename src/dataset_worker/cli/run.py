"""CLI command: `dataset-worker run` — the dataset worker process (docs/architecture.md#worker-process).

Boolean flags also accept Singularity's (urfave/cli) spelling `--enable-scan=false`; the argument
list is rewritten to `--no-enable-scan` before Typer parses it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from dataset_worker.cli.common import fail, settings
from dataset_worker.durations import DurationError, parse_duration
from dataset_worker.logs import setup_logging

if TYPE_CHECKING:
    from dataset_worker.db import Database

# As worker.runtime.process and worker.runtime.retry, repeated so that loading the CLI does not
# import the worker (tests/unit/test_cli_startup.py keeps them equal).
EXIT_ERROR = 1
EXIT_USAGE = 2
DEFAULT_MAX_ATTEMPTS = 5

BOOL_FLAGS = ("enable-scan", "enable-pack", "enable-dag", "exit-on-complete", "exit-on-error")
# Go's strconv.ParseBool, which urfave/cli uses for `--flag=value`.
TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def rewrite_bool_flags(args: list[str]) -> list[str]:
    """Turn `--enable-scan=false` into `--no-enable-scan` (and `=true` into `--enable-scan`)."""
    rewritten: list[str] = []
    for arg in args:
        if arg == "--":
            rewritten.extend(args[len(rewritten) :])
            break
        name, sep, value = arg.partition("=")
        flag = name.lstrip("-")
        if sep and name.startswith("-") and flag in BOOL_FLAGS:
            if value in TRUE_WORDS:
                arg = f"--{flag}"
            elif value in FALSE_WORDS:
                arg = f"--no-{flag}"
            else:
                raise typer.BadParameter(
                    f"{value!r} is not a boolean; use true or false", param_hint=f"'--{flag}'"
                )
        rewritten.append(arg)
    return rewritten


class RunCommand(typer.core.TyperCommand):
    """The `run` command, accepting Go-style `--flag=false` booleans."""

    def parse_args(self, ctx: typer._click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rewrite_bool_flags(args))


def _duration(flag: str, text: str) -> float:
    try:
        return parse_duration(text)
    except DurationError as exc:
        fail(f"{flag}: {exc}", EXIT_USAGE)


def run_command(
    ctx: typer.Context,
    concurrency: Annotated[
        int, typer.Option(help="Number of worker threads, each with its own workers row (1-64).")
    ] = 1,
    enable_scan: Annotated[bool, typer.Option(help="Claim scan jobs.")] = True,
    enable_pack: Annotated[bool, typer.Option(help="Claim pack jobs.")] = True,
    enable_dag: Annotated[bool, typer.Option(help="Claim daggen jobs.")] = True,
    exit_on_complete: Annotated[
        bool, typer.Option(help="A thread exits the first time it finds no job.")
    ] = False,
    exit_on_error: Annotated[
        bool, typer.Option(help="The first error stops the whole process (exit code 1).")
    ] = False,
    min_interval: Annotated[
        str, typer.Option(metavar="DURATION", help="First and smallest poll backoff (Go syntax).")
    ] = "5s",
    max_interval: Annotated[
        str, typer.Option(metavar="DURATION", help="Largest poll backoff (Go syntax).")
    ] = "160s",
    heartbeat_interval: Annotated[
        str, typer.Option(metavar="DURATION", help="How often each thread's row is refreshed.")
    ] = "5s",
    stale_after: Annotated[
        str,
        typer.Option(
            metavar="DURATION",
            help="A worker silent this long is dead; its jobs become claimable again.",
        ),
    ] = "20s",
    max_attempts: Annotated[
        int,
        typer.Option(
            help="Attempts a job gets when it fails transiently (connection lost, database "
            "busy, storage 5xx), with exponential backoff between them (1-100).",
        ),
    ] = DEFAULT_MAX_ATTEMPTS,
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error.", case_sensitive=False)
    ] = "info",
    prep: Annotated[
        list[str] | None,
        typer.Option(
            "--prep",
            metavar="NAME",
            help="Claim only the jobs of this preparation (name or id; repeat for several).",
        ),
    ] = None,
) -> None:
    """Run the dataset worker: claim and run scan, pack and daggen jobs until stopped.

    Exit codes: 0 all threads done (--exit-on-complete), 1 error, 2 bad flags, 130 SIGINT/SIGTERM.
    """
    from sqlalchemy.engine import make_url

    from dataset_worker.db import open_database
    from dataset_worker.worker.runtime.config import InvalidWorkerConfig, WorkerConfig
    from dataset_worker.worker.runtime.process import WorkerProcess

    if log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        fail(f"--log-level must be debug, info, warning or error, got {log_level!r}", EXIT_USAGE)
    try:
        config = WorkerConfig(
            concurrency=concurrency,
            enable_scan=enable_scan,
            enable_pack=enable_pack,
            enable_dag=enable_dag,
            exit_on_complete=exit_on_complete,
            exit_on_error=exit_on_error,
            min_interval=_duration("--min-interval", min_interval),
            max_interval=_duration("--max-interval", max_interval),
            heartbeat_interval=_duration("--heartbeat-interval", heartbeat_interval),
            stale_after=_duration("--stale-after", stale_after),
            max_attempts=max_attempts,
        ).validate()
    except InvalidWorkerConfig as exc:
        fail(str(exc), EXIT_USAGE)
    setup_logging(log_level)
    resolved = settings(ctx)
    if resolved.is_sqlite:
        from dataset_worker.private import private_dir

        private_dir(resolved.state_dir)
    try:
        # One connection per thread plus heartbeat, reaper, monitor and deals (PostgreSQL pool).
        db = open_database(resolved.database_url, pool_size=config.concurrency + 5)
    except Exception as exc:
        shown = make_url(resolved.database_url).render_as_string(hide_password=True)
        fail(f"cannot open the database {shown}: {exc}", EXIT_ERROR)
    try:
        if prep:
            config = replace(config, attachments=_attachments(db, prep))
        code = WorkerProcess(
            db, config, state_dir=resolved.state_dir, deals_state_dir=resolved.state_dir
        ).run()
    finally:
        db.dispose()
    raise typer.Exit(code)


def _attachments(db: Database, names: list[str]) -> tuple[int, ...]:
    """The source attachments of the preparations `--prep` names; exit 2 naming an unknown one."""
    from dataset_worker.prep.errors import PrepError
    from dataset_worker.prep.lookup import find_preparation

    found: list[int] = []
    with db.read() as session:
        for name in names:
            try:
                preparation = find_preparation(session, name)
            except PrepError as exc:
                fail(f"--prep: {exc}", EXIT_USAGE)
            found += [attachment.id for attachment in preparation.source_attachments]
    return tuple(sorted(set(found)))


def register(app: typer.Typer) -> None:
    """Add the `run` command to the app."""
    kwargs: dict[str, Any] = {"cls": RunCommand}
    app.command("run", **kwargs)(run_command)
