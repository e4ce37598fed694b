"""Options and helpers shared by all commands.

Start-up time rule for every command module: at module level import only typer, the standard
library and light project modules (config, sizes, durations, cli.common, cli.prep). Import
rich, pydantic, SQLAlchemy, the database, the use-cases, the worker and the server inside the
command function, so `dataset-worker --help` and `commp` do not pay for them
(tests/unit/test_cli_startup.py checks it). A command with much code of its own may keep it in a
module imported by the command function (cli/prepare.py → cli/prepare_run.py). Short reads
(`jobs list`, `prep status`) use the Core queries of prep/jobs.py and prep/status.py, which
load neither the ORM nor pydantic, and print their JSON-ready data.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer
import typer.core

from dataset_worker.cli import params
from dataset_worker.config import ENV_DATABASE_URL, ENV_STATE_DIR, Settings, load_settings

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console
    from rich.progress import Progress

    from dataset_worker.db import Database


class PlainHelpGroup(typer.core.TyperGroup):
    """The root command group: every command's help is click's plain help.

    Rich's help panels cut long option names at 80 columns ("--no-exit-on-compl…"); click's
    formatter wraps the descriptions instead and keeps every option whole. It also spares
    `--help` the import of rich. Set on the whole tree, including groups added later. Plain
    option values are converted without pydantic too (see cli/params.py).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_help(self)
        _plain_conversions(self)


def _plain_help(command: Any) -> None:
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    if not command.short_help and command.help:
        # The whole first sentence in command lists (click would cut it to fit one line).
        command.short_help = _first_sentence(command.help)
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def _plain_conversions(command: Any) -> None:
    params.install_on_command(command)
    for sub in getattr(command, "commands", {}).values():
        _plain_conversions(sub)


def _first_sentence(text: str) -> str:
    paragraph = inspect.cleandoc(text).split("\n\n")[0].replace("\n", " ")
    end = paragraph.find(". ")
    return paragraph[: end + 1] if end >= 0 else paragraph


def root_callback(
    ctx: typer.Context,
    state_dir: Annotated[
        str | None,
        typer.Option(
            envvar=ENV_STATE_DIR,
            help="State directory (default $XDG_STATE_HOME/dataset-worker, that is "
            "~/.local/state/dataset-worker).",
        ),
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


def counted(count: int, one: str, many: str | None = None) -> str:
    """`1 folder`, `2 folders`: a count with its noun in the right number."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


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
def transfer_progress() -> Iterator[Progress | None]:
    """A rich progress display with byte, speed and ETA columns on stderr when a person watches
    it; None in pipes, logs and tests (so they get no escape codes)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield progress


@contextmanager
def file_progress(size: int, name: str) -> Iterator[Callable[[int], object] | None]:
    """A progress bar on stderr for large files on a terminal; otherwise nothing."""
    if size < PROGRESS_MIN_SIZE:  # small files: no bar, and no rich import either
        yield None
        return
    with transfer_progress() as progress:
        if progress is None:
            yield None
            return
        from rich.markup import escape

        task = progress.add_task(escape(name), total=size)  # a file name is not markup
        yield lambda n: progress.advance(task, n)


def table_console() -> Console:
    """A rich console for tables: the terminal's width, or 240 columns when piped (so CIDs stay
    whole in files and pipes) unless COLUMNS says otherwise."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=240)
    return console


PrepArg = Annotated[str, typer.Argument(metavar="PREP", help="Preparation name or id.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON (camelCase keys).")
]


# --- database and JSON plumbing shared by the command modules -----------------------------------------------------------------------------------


@contextmanager
def database(ctx: typer.Context) -> Iterator[Database]:
    """Open the configured database for one command; turn PrepErrors into clean failures."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from dataset_worker.db import open_database
    from dataset_worker.prep.errors import PrepError

    config = settings(ctx)
    _prepare_sqlite_folder(config)
    try:
        db = open_database(config.database_url)
    except DBAPIError as exc:  # unreachable server, bad credentials, unreadable file
        fail(f"cannot open the database {_safe_url(config.database_url)}: {exc.orig}")
    except SQLAlchemyError as exc:  # a URL SQLAlchemy cannot use
        fail(f"cannot open the database {_safe_url(config.database_url)}: {exc}")
    try:
        yield db
    except PrepError as exc:
        fail(prep_error_message(exc, config))
    finally:
        db.dispose()


def prep_error_message(exc: Exception, config: Settings) -> str:
    """The message of a use-case error; a "not found" also names the database it looked in
    (password hidden): the usual cause is a command pointed at another state dir or database."""
    from dataset_worker.prep.errors import NotFound

    if isinstance(exc, NotFound):
        return f"{exc}; looked in the database {_safe_url(config.database_url)}"
    return str(exc)


def _prepare_sqlite_folder(config: Settings) -> None:
    """Create the state dir for the default SQLite file; refuse other missing folders clearly."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not config.is_sqlite:
        return
    try:
        path = make_url(config.database_url).database
    except ArgumentError as exc:
        fail(f'invalid database URL "{config.database_url}": {exc}')
    if not path or path == ":memory:":
        return
    folder = Path(path).parent
    if folder == config.state_dir:
        from dataset_worker.private import private_dir

        private_dir(folder)
    elif not folder.is_dir():
        fail(f'the folder of the SQLite database "{path}" does not exist')


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def print_json(data: Any) -> None:
    """Print JSON the way every `--json` option does: indented, UTF-8 kept."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def dump_view(view: BaseModel) -> Any:
    """A view as JSON-ready data with camelCase keys (the HTTP API's shape)."""
    return view.model_dump(mode="json", by_alias=True)


def wake_workers(ctx: typer.Context) -> None:
    """Work was queued: wake the idle workers of this state dir now (dataset_worker/wakeup.py)."""
    from dataset_worker.wakeup import ring

    ring(settings(ctx).state_dir)
