"""The work of `dataset-worker prepare` (cli/prepare.py declares the command).

Imported only when the command runs: it loads the database, the use-cases, the worker runtime and
rich, which the rest of the CLI must not pay for (see cli/common.py).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from dataset_worker.cli.common import fail, settings, table_console
from dataset_worker.cli.manifest import write_export
from dataset_worker.cli.prepare_helpers import start_helpers, stop_helpers, wait_helpers
from dataset_worker.cli.prepare_progress import ProgressReporter
from dataset_worker.config import Settings
from dataset_worker.db import Database, open_database
from dataset_worker.db.models import Job, JobState, JobType, Preparation
from dataset_worker.defaults import DEFAULT_MAX_SIZE, DEFAULT_MIN_PIECE_SIZE
from dataset_worker.logs import LogfmtFormatter
from dataset_worker.prep import (
    CreatePreparationRequest,
    InvalidParameter,
    NotFound,
    PrepError,
    create_preparation,
    list_pieces,
    start_daggen,
    start_pack,
    start_scan,
)
from dataset_worker.prep.create import MAX_NAME_LENGTH, parse_size_field, resolve_folders
from dataset_worker.prep.lookup import find_preparation, single_source
from dataset_worker.prep.manifest import ManifestFormat, ManifestRequest
from dataset_worker.prep.manifest_meta import ManifestMetaInput, resolve_meta
from dataset_worker.private import private_dir, private_file
from dataset_worker.sizes import SizeError, format_size, next_power_of_two, parse_size
from dataset_worker.worker.runtime.config import (
    MAX_CONCURRENCY,
    WorkerConfig,
    choose_read_ahead,
    usable_cpus,
)
from dataset_worker.worker.runtime.process import EXIT_OK, EXIT_SIGNAL, WorkerProcess

EXIT_FAILED = 1
RETRY_WAIT = 1.0  # seconds between runs of a phase whose jobs wait (a retry delay, another worker)
PENDING = (JobState.READY, JobState.PROCESSING)
# Pack jobs a start makes ready (not `created` ones: their scan is still filling them).
NEEDS_START = (JobState.PAUSED, JobState.ERROR)

log = logging.getLogger("dataset_worker.prepare")


@dataclass(frozen=True)
class Target:
    """The preparation being prepared."""

    id: int
    name: str
    attachment_id: int
    source: str
    output: str
    no_dag: bool


def default_name(source: Path) -> str:
    """The source folder's name reduced to [A-Za-z0-9._-] (never empty, never all digits)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", source.resolve().name).strip("-.")
    if not name:
        return "dataset"
    if name.isdigit():
        name = f"dataset-{name}"
    return name[:MAX_NAME_LENGTH]


def prepare(
    ctx: typer.Context,
    source: Path,
    output: Path | None,
    max_size: str | None,
    concurrency: int,
    name: str | None,
    manifest: Path | None,
    meta: ManifestMetaInput,
    *,
    auto_rescan: bool = False,
) -> NoReturn:
    """Run `prepare` with the parsed options; exits with the command's exit code."""
    threads = concurrency or min(usable_cpus(), 8)
    if not 1 <= threads <= MAX_CONCURRENCY:
        fail(f"--concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}")
    if meta.given() and manifest is None:
        fail("the dataset description options are for the manifest: add --manifest FILE")
    config = settings(ctx)
    db = _open(config, threads)
    try:
        code = _prepare(
            db, config, source, output, max_size, name, threads, manifest, meta, auto_rescan
        )
    except PrepError as exc:
        fail(str(exc))
    except KeyboardInterrupt:  # while setting up or printing: no job is running
        code = EXIT_SIGNAL
    finally:
        db.dispose()
    raise typer.Exit(code)


def _prepare(
    db: Database,
    config: Settings,
    source: Path,
    output: Path | None,
    max_size: str | None,
    name: str | None,
    threads: int,
    manifest: Path | None,
    meta: ManifestMetaInput,
    auto_rescan: bool = False,
) -> int:
    """Create or resume, run the phases, then print the pieces and write the manifest."""
    console = table_console()
    name = name or default_name(source)
    if manifest is not None:  # before anything is created: not after hours of packing either
        _check_manifest_options(db, name, manifest, meta)
    # A new preparation's CAR files go to the state dir unless --output says otherwise.
    output_default = config.state_dir / "cars" / name
    target = _create_or_resume(
        db, source, output, output_default, max_size, name, auto_rescan=auto_rescan
    )
    log_path = _log_to_file(config, target.name)
    code = _run(db, target, threads, console, _Helpers(config, log_path))
    if code == EXIT_OK:
        _print_pieces(console, db, target)
        if manifest is not None:
            request = ManifestRequest(ManifestFormat.SUPER_MANIFEST, meta)
            write_export(db, target.id, request, manifest)
            console.print(f"Manifest: {escape(str(manifest))}", highlight=False)
    elif code == EXIT_FAILED:
        _report_failures(console, db, target, log_path)
    else:
        console.print("Interrupted: run the same command again to resume.", highlight=False)
    return code


# --- setup ----------------------------------------------------------------------------------------


def _open(config: Settings, threads: int) -> Database:
    if config.is_sqlite:
        private_dir(config.state_dir)
    try:
        # The worker threads, its heartbeat, reaper and monitor, and the progress poller.
        return open_database(config.database_url, pool_size=threads + 5)
    except Exception as exc:
        shown = make_url(config.database_url).render_as_string(hide_password=True)
        fail(f"cannot open the database {shown}: {exc}")


def _log_to_file(config: Settings, name: str) -> Path:
    """The worker's log lines go to a file: the terminal shows the progress view instead."""
    folder = config.state_dir / "logs"
    private_dir(folder)
    path = folder / f"prepare-{name}.log"
    private_file(path)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    return path


def _create_or_resume(
    db: Database,
    source: Path,
    output: Path | None,
    output_default: Path,
    max_size: str | None,
    name: str,
    *,
    auto_rescan: bool = False,
) -> Target:
    """The preparation `name` if it prepares the same folders (else a clear error), or a new one."""
    try:
        target = _load(db, name)
    except NotFound:
        destination = output if output is not None else output_default
        size = max_size or DEFAULT_MAX_SIZE
        request = CreatePreparationRequest(
            name=name,
            source=str(source),
            output=str(destination),
            max_size=size,
            min_piece_size=_min_piece_size(size),
            auto_rescan=auto_rescan,
        )
        create_preparation(db, request)
        return _load(db, name)
    _check_same(db, target, source, output, max_size)
    return target


def _min_piece_size(max_size: str) -> str:
    """The default minimum piece size, lowered to the piece size a small --max-size gives (this
    command has no --piece-size / --min-piece-size: small test datasets must just work)."""
    default = parse_size(DEFAULT_MIN_PIECE_SIZE)
    try:
        piece = next_power_of_two(parse_size(max_size))
    except SizeError:
        return DEFAULT_MIN_PIECE_SIZE  # the creation names the bad --max-size
    return str(min(default, piece))


def _load(db: Database, key: str | int) -> Target:
    with db.read() as session:
        prep = find_preparation(session, key)
        attachment = single_source(prep)
        outputs = [a.storage.path for a in prep.output_attachments]
        return Target(
            prep.id,
            prep.name,
            attachment.id,
            attachment.storage.path,
            outputs[0] if outputs else "",
            prep.no_dag,
        )


def _check_same(
    db: Database, target: Target, source: Path, output: Path | None, max_size: str | None
) -> None:
    """A resumed preparation must be the one asked for: same source, output and max size."""
    source_path, output_path = resolve_folders(str(source), str(output or target.output))
    hint = "use another --name for a new preparation"
    if str(source_path) != target.source:
        raise InvalidParameter(
            f'preparation "{target.name}" already exists for source {target.source}, not '
            f"{source_path}; {hint}"
        )
    if output is not None and str(output_path) != target.output:
        raise InvalidParameter(
            f'preparation "{target.name}" writes its CAR files to {target.output}, not '
            f"{output_path}; drop --output to resume it, or {hint}"
        )
    if max_size is not None:
        wanted = parse_size_field("maxSize", max_size)
        with db.read() as session:
            current = session.scalar(
                select(Preparation.max_size).where(Preparation.id == target.id)
            )
        if wanted != current:
            raise InvalidParameter(
                f'preparation "{target.name}" was created with max size {current} '
                f"({format_size(current or 0)}), not {wanted}; drop --max-size to resume it, "
                f"or {hint}"
            )


def _check_manifest_options(
    db: Database, name: str, manifest: Path, meta: ManifestMetaInput
) -> None:
    """Refuse a manifest path that cannot be written, and a missing or invalid dataset
    description (given now, or remembered by an existing preparation `name`)."""
    if manifest.is_dir():
        raise InvalidParameter(f"--manifest {manifest}: is a folder; give a file name")
    folder = manifest.resolve().parent
    if not folder.is_dir():
        raise InvalidParameter(f"--manifest {manifest}: the folder {folder} does not exist")
    with db.read() as session:
        stored = session.scalar(select(Preparation.manifest_meta).where(Preparation.name == name))
    resolve_meta(stored, meta, name)


# --- the phases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Helpers:
    """Where helper pack processes find the database and write their log."""

    config: Settings
    log_path: Path


def _run(db: Database, target: Target, threads: int, console: Console, helpers: _Helpers) -> int:
    """Run the phases; 0 done, 1 a job failed, 130 interrupted.

    The scan, the packing and the daggen the last pack job queues are one phase: pack jobs
    start as soon as the scan queues them (in the helper processes while this one scans), so
    the scan's time hides behind packing. A DAG that is still behind after it (a resumed run)
    is built in a phase of its own.
    """
    with ProgressReporter(db, target.name, console) as progress:
        try:
            scan = _queue(db, target, JobType.SCAN)
            pack = _queue(db, target, JobType.PACK)
            if scan or pack:
                types: tuple[JobType, ...] = (
                    (JobType.SCAN, JobType.PACK) if scan else (JobType.PACK,)
                )
                if not target.no_dag:  # the last pack job queues it (the auto chain)
                    types += (JobType.DAGGEN,)
                progress.set_phase("scanning and packing" if scan else "packing")
                code = _run_phase(db, target, types, threads, helpers)
                if code != EXIT_OK:
                    return _stopped(progress, code)
            if _dag_wanted(db, target) and _queue(db, target, JobType.DAGGEN):
                progress.set_phase("building the DAG")
                code = _run_phase(db, target, (JobType.DAGGEN,), 1, helpers)
                if code != EXIT_OK:
                    return _stopped(progress, code)
            progress.set_phase("done")
            return EXIT_OK
        except KeyboardInterrupt:  # between two phases (the worker handles it during one)
            progress.set_phase("interrupted")
            return EXIT_SIGNAL


def _stopped(progress: ProgressReporter, code: int) -> int:
    progress.set_phase("failed" if code == EXIT_FAILED else "interrupted")
    return code


def _states(db: Database, target: Target, *types: JobType) -> dict[JobState, int]:
    """The preparation's jobs of `types`, counted by state (one query)."""
    with db.read() as session:
        rows = session.execute(
            select(Job.state, func.count())
            .where(Job.attachment_id == target.attachment_id, Job.type.in_(types))
            .group_by(Job.state)
        )
        return {state: count for state, count in rows}


def _queue(db: Database, target: Target, job_type: JobType) -> bool:
    """Make the phase's jobs ready where needed; False when the phase has nothing to do."""
    states = _states(db, target, job_type)
    if job_type is JobType.PACK:
        if any(states.get(s) for s in NEEDS_START):
            start_pack(db, target.id)
        return any(states.get(s) for s in (*PENDING, *NEEDS_START))
    if any(states.get(s) for s in PENDING):
        return True
    if states.get(JobState.COMPLETE) and (job_type is JobType.SCAN or not _dag_behind(db, target)):
        return False  # scanned already / the DAG already covers every directory
    if job_type is JobType.SCAN:
        start_scan(db, target.id)
    else:
        start_daggen(db, target.id, force=True)  # the DAG is behind: build it again
    return True


def _dag_wanted(db: Database, target: Target) -> bool:
    """A DAG piece is wanted unless the preparation has noDag or nothing was packed (an empty
    source: daggen would fail with "no root CID")."""
    return not target.no_dag and bool(_states(db, target, JobType.PACK).get(JobState.COMPLETE))


def _dag_behind(db: Database, target: Target) -> bool:
    """Some directory has content its last DAG piece does not hold."""
    from dataset_worker.db.directories import dag_behind

    with db.read() as session:
        return dag_behind(session, target.attachment_id)


def _run_phase(
    db: Database, target: Target, types: tuple[JobType, ...], threads: int, helpers: _Helpers
) -> int:
    """Run the worker on `types` jobs until none of the preparation's is ready or running.

    More than one pack job at a time runs in processes, not threads (see cli/prepare_helpers.py):
    this process scans and packs with one thread and `threads - 1` helper processes pack beside
    it (waiting for the scan's first pack jobs when there is a scan).
    """
    processes = threads if JobType.PACK in types else 1
    config = WorkerConfig(
        concurrency=1 if processes > 1 else threads,
        enable_scan=JobType.SCAN in types,
        enable_pack=JobType.PACK in types,
        enable_dag=JobType.DAGGEN in types,
        exit_on_complete=True,
        attachments=(target.attachment_id,),  # never another preparation's jobs
    )
    while True:
        states = _states(db, target, *types)
        if states.get(JobState.ERROR):
            return EXIT_FAILED
        if not any(states.get(s) for s in PENDING):
            return EXIT_OK
        code = _run_worker(db, config, processes, target, helpers)
        if code == EXIT_SIGNAL:
            return EXIT_SIGNAL
        if code != EXIT_OK:
            return EXIT_FAILED
        if any(_states(db, target, *types).get(s) for s in PENDING):
            # Jobs the threads could not claim: a retry waiting out its delay, or jobs another
            # worker is running. Look again shortly (Ctrl-C here interrupts as anywhere else).
            time.sleep(RETRY_WAIT)


def _run_worker(
    db: Database, config: WorkerConfig, processes: int, target: Target, helpers: _Helpers
) -> int:
    """This process's worker, with `processes - 1` helper processes beside it (none for 1)."""
    # With the state dir, the scan's queued pack jobs wake the helpers at once (wakeup.py).
    worker = WorkerProcess(db, config, state_dir=helpers.config.state_dir)
    if processes == 1:
        return worker.run()
    # Read ahead only while the pack processes together leave a core idle, as for threads.
    read_ahead = choose_read_ahead(processes)
    worker.pack_read_ahead = read_ahead
    started = start_helpers(
        processes - 1, helpers.config, helpers.log_path, read_ahead, target.attachment_id
    )
    try:
        code = worker.run()
    except BaseException:
        stop_helpers(started)
        raise
    if code == EXIT_SIGNAL:
        stop_helpers(started)
        return code
    try:
        wait_helpers(started)  # their last jobs
    except KeyboardInterrupt:
        return EXIT_SIGNAL
    return code


# --- the end --------------------------------------------------------------------------------------


def _print_pieces(console: Console, db: Database, target: Target) -> None:
    pieces = list_pieces(db, target.id)
    table = Table(title=f'Pieces of "{escape(target.name)}" (CAR files in {escape(target.output)})')
    # A narrow terminal folds the CIDs onto several lines: never cut, they are to be copied.
    for column in ("Type", "Piece CID", "Piece size", "Payload CID", "CAR size"):
        if "CID" in column:
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, no_wrap=True, justify="left" if column == "Type" else "right")
    for piece in pieces:
        table.add_row(
            piece.piece_type.value,
            piece.piece_cid,
            format_size(piece.piece_size),
            piece.root_cid,
            str(piece.file_size),
        )
    console.print(table)


def _report_failures(console: Console, db: Database, target: Target, log_path: Path) -> None:
    with db.read() as session:
        failed = session.execute(
            select(Job.id, Job.type, Job.error_message)
            .where(Job.attachment_id == target.attachment_id, Job.state == JobState.ERROR)
            .order_by(Job.id)
            .limit(10)
        ).all()
    for job_id, job_type, message in failed:
        console.print(
            f"[red]{job_type} job {job_id} failed:[/red] {escape(message)}", highlight=False
        )
    console.print(
        f"Fix the cause and run the same command again (failed jobs are retried); "
        f"the worker's log is {escape(str(log_path))}",
        highlight=False,
    )
