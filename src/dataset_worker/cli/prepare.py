"""CLI command `dataset-worker prepare SOURCE`: scan, pack and build the DAG of a folder in one go.

The preparation lives in the configured database (the state dir's SQLite file by default). It is
created on the first run (named after the source folder unless --name is given) and resumed on
the next ones: a run interrupted with Ctrl-C releases its in-flight jobs (the worker runtime puts
them back to `ready`), and the next run carries on without redoing finished pieces.

The work runs in this process with the real worker runtime, one phase at a time: the scan, then
the pack jobs (--concurrency threads), then daggen, which this command queues itself once every
pack job is complete (idempotent: not again when the DAG already covers every directory). Each
phase is a `WorkerProcess` with exit-on-complete and only that job type enabled, so no thread
quits early because the next phase's jobs do not exist yet. It claims only the jobs of its own
preparation (as `run --prep NAME`): other preparations sharing the database are left to their
workers.

Exit codes: 0 done, 1 a job failed (or bad input), 130 interrupted (SIGINT/SIGTERM).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataset_worker.cli.manifest import (
    DatasetNameOpt,
    DescriptionOpt,
    LicenseOpt,
    OpenWithOpt,
    ProjectUrlOpt,
    TagOpt,
    VersionOpt,
    meta_input,
)
from dataset_worker.defaults import DEFAULT_MAX_SIZE

# The work is in cli/prepare_run.py, imported when the command runs: it loads the database, the
# worker runtime and rich, which loading the CLI must not (see cli/common.py).


def register(app: typer.Typer) -> None:
    """Add the `prepare` command."""
    app.command("prepare")(prepare_command)


def prepare_command(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(metavar="SOURCE", help="Folder to prepare.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="DEST",
            help="Folder for the CAR files (default: <state dir>/cars/<name>; on resume: as "
            "created).",
        ),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option("--max-size", metavar="SIZE", help=f"Largest CAR file ({DEFAULT_MAX_SIZE})."),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(help="Pack jobs at once (default: the usable CPUs, at most 8)."),
    ] = 0,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Preparation name (default: the source folder's name)."),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", metavar="FILE", help="Write the super-manifest here."),
    ] = None,
    dataset_name: DatasetNameOpt = None,
    description: DescriptionOpt = None,
    version: VersionOpt = None,
    license_: LicenseOpt = None,
    project_url: ProjectUrlOpt = None,
    open_with: OpenWithOpt = None,
    tags: TagOpt = None,
    auto_rescan: Annotated[
        bool,
        typer.Option(
            "--auto-rescan",
            help="Store on a new preparation: a pack failing on a changed source file queues "
            "a rescan (see prep create --auto-rescan).",
        ),
    ] = False,
) -> None:
    """Scan, pack and build the DAG of SOURCE in one go; rerun to resume after Ctrl-C.

    Prints the pieces at the end; with --manifest, writes the super-manifest (its description
    options as for `prep manifest`). Exit codes: 0 done, 1 a job failed, 130 interrupted.
    """
    from dataset_worker.cli.prepare_run import prepare

    meta = meta_input(dataset_name, description, version, license_, project_url, open_with, tags)
    prepare(
        ctx, source, output, max_size, concurrency, name, manifest, meta, auto_rescan=auto_rescan
    )
