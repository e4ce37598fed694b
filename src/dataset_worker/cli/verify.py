"""CLI command: `dataset-worker verify PREP` re-reads a preparation's CARs (and, with --deep,
rebuilds its files) and reports everything that does not match the database or the source.

Exit codes: 0 clean, 1 something is wrong (or the database cannot be opened), 2 the request
itself cannot be served (unknown preparation, --deep without a DAG by design).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from dataset_worker.cli.common import (
    JsonOpt,
    PrepArg,
    database,
    fail,
    prep_error_message,
    settings,
    transfer_progress,
)

# rich and the verifier are imported inside the functions so that loading the CLI stays fast
# (see cli/common.py).
if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from dataset_worker.verify.preparation import ProgressSink

EXIT_PROBLEMS = 1
EXIT_USAGE = 2


class _RichProgress:
    """A ProgressSink drawing one bar per stage on stderr."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def stage(self, description: str, total: int) -> None:
        """Finish the previous bar and start a new one."""
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int) -> None:
        """Move the current bar on by `n` bytes."""
        if self._task is not None:
            self._progress.advance(self._task, n)


@contextmanager
def _progress() -> Iterator[ProgressSink | None]:
    """Progress bars only when a person watches stderr; nothing in pipes, logs and tests."""
    with transfer_progress() as progress:
        yield None if progress is None else _RichProgress(progress)


def verify_command(
    ctx: typer.Context,
    prep: PrepArg,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also rebuild every file from the DAG (root CID after daggen) and compare it "
            "with the source file.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-read every CAR of a preparation: framing, block hashes, sizes, roots and piece CIDs."""
    from dataset_worker.prep import PrepError
    from dataset_worker.verify.preparation import VerifyUsageError, verify_preparation

    with database(ctx) as db:
        try:
            with _progress() as sink:
                report = verify_preparation(db, prep, deep=deep, progress=sink)
        except (PrepError, VerifyUsageError) as exc:
            fail(prep_error_message(exc, settings(ctx)), EXIT_USAGE)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        for line in report.lines():
            typer.echo(line)
    if not report.ok:
        raise typer.Exit(EXIT_PROBLEMS)


def register(app: typer.Typer) -> None:
    """Add this module's command to the app."""
    app.command("verify")(verify_command)
