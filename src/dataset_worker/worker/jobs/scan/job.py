"""The scan job (docs/architecture.md#scan-job): list the source, record what is new, group its ranges into pack jobs.

Steps: re-batch the ranges left without a job, walk the source breadth first in sorted order,
write directories/files/ranges/pack jobs in batches (one transaction each), and flush the last
partial job. Files already recorded with the same path, size and mtime are skipped, so running
the scan again is incremental.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from functools import partial

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from dataset_worker.db.models import File
from dataset_worker.db.statistics import analyze
from dataset_worker.logs import log_event
from dataset_worker.storage import SourceEntry
from dataset_worker.storage.base import ListingErrorHandler, ResumableSource, WalkStart
from dataset_worker.worker.jobs.attachment import AttachmentSetup, load_setup, root_directory
from dataset_worker.worker.jobs.scan.batching import JobBatcher, range_split_size
from dataset_worker.worker.jobs.scan.resume import mark_listed, resume_point
from dataset_worker.worker.jobs.scan.stale import FileMarks, Retired, retire_stale, stale_files
from dataset_worker.worker.jobs.scan.writer import ScanState, ScanWriter
from dataset_worker.worker.runtime.context import JobContext

BATCH_FILES = 5000  # commit at least every this many listed entries …
BATCH_SECONDS = 2.0  # … or this often, so a slow listing still saves its progress
# Planner statistics (db/statistics.py): first refreshed at this many files, then each time the
# count has grown this many times: 3 ANALYZEs for 1M files, 4 for 10M (each a few tenths of a s).
ANALYZE_FIRST = 50_000
ANALYZE_GROWTH = 4
# Listed entries between two looks at the clock and the stop flags: a few microseconds each on a
# local disk, so Ctrl-C still stops at once, without two calls per entry of a million.
CHECK_ENTRIES = 100


def run_scan(ctx: JobContext) -> None:
    """Scan the job's source attachment; pack jobs it fills are created `ready`."""
    started = time.monotonic()
    with ctx.db.read() as session:
        setup = load_setup(session, ctx.attachment_id)
        root_id = root_directory(session, ctx.attachment_id).id
        has_files = session.scalar(select(exists().where(File.attachment_id == ctx.attachment_id)))
        start = _resume_point(session, ctx.attachment_id, setup) if has_files else None
        # A resumed first scan's rows are its own listing: nothing of them to retire.
        marks = (
            FileMarks.of_attachment(session, ctx.attachment_id)
            if has_files and start is None
            else None
        )
    writer = ScanWriter(
        ctx.attachment_id,
        root_id,
        range_split_size(setup.max_size),
        check_known=bool(has_files),
        marks=marks,
        check_cancelled=ctx.check_cancelled,
    )
    state = ScanState(JobBatcher(setup.max_size))
    log_event(
        ctx.logger, "scan.start", job=ctx.job_id, source=setup.source.describe(), rescan=has_files
    )
    leftovers, state = _rebatch(ctx, writer, state)
    totals = _walk(ctx, setup, writer, state, start)
    retired = Retired()
    if marks is not None:
        retired = _retire(ctx, marks, listing_complete=totals.errors == 0)
        if retired.jobs_dropped:
            # The dropped jobs' current ranges have no job now: batch them again.
            replanned, state = _rebatch(ctx, writer, ScanState(JobBatcher(setup.max_size)))
            leftovers += replanned
            state = _flush(ctx, writer, state, [], totals, final=True)
            totals.jobs += state.jobs_created
    log_event(
        ctx.logger,
        "scan.done",
        job=ctx.job_id,
        leftovers=leftovers,
        files_added=totals.added,
        files_skipped=totals.skipped,
        files_retired=retired.files,
        pack_jobs_rebuilt=retired.jobs_dropped,
        listing_errors=totals.errors,
        pack_jobs=totals.jobs,
        seconds=round(time.monotonic() - started, 3),
    )


def _finish(ctx: JobContext, writer: ScanWriter, state: ScanState) -> ScanState:
    """Create the last, possibly small, pack job in a transaction of its own."""

    def work(session: Session) -> ScanState:
        snapshot = state.copy()
        writer.finish(session, snapshot)
        return snapshot

    return ctx.db.run_write(work)


def _retire(ctx: JobContext, marks: FileMarks, *, listing_complete: bool) -> Retired:
    """Take the rows the listing no longer confirms out of the plan (worker/jobs/scan/stale.py)."""
    if not listing_complete:
        log_event(
            ctx.logger,
            "scan.keep_unlisted",
            logging.WARNING,
            job=ctx.job_id,
            reason="some directories could not be listed; files not seen are kept",
        )
    totals = Retired()
    for page in stale_files(ctx.db, ctx.attachment_id, marks, listing_complete=listing_complete):
        ctx.check_cancelled()
        done = ctx.db.run_write(partial(retire_stale, files=page))
        totals.add(done)
        for stale in page:
            log_event(ctx.logger, "scan.retired", logging.DEBUG, job=ctx.job_id, path=stale.path)
    return totals


def _rebatch(ctx: JobContext, writer: ScanWriter, state: ScanState) -> tuple[int, ScanState]:
    def work(session: Session) -> tuple[int, ScanState]:
        snapshot = state.copy()
        count = writer.rebatch_leftovers(session, snapshot)
        return count, snapshot

    return ctx.db.run_write(work)


class _Totals:
    def __init__(self) -> None:
        self.added = 0
        self.skipped = 0
        self.errors = 0
        self.jobs = 0
        self.analyzed = 0  # files added when the planner's statistics were last refreshed


def _refresh_statistics(ctx: JobContext, totals: _Totals, *, final: bool) -> None:
    """Refresh PostgreSQL's statistics (db/statistics.py) before pack jobs are woken: once
    ANALYZE_FIRST files are in, again each time their number has grown ANALYZE_GROWTH times,
    and at the end of a scan that added files since."""
    due = max(ANALYZE_FIRST, totals.analyzed * ANALYZE_GROWTH)
    if totals.added >= due or (final and totals.added > totals.analyzed):
        analyze(ctx.db)
        totals.analyzed = totals.added


def _walk(
    ctx: JobContext,
    setup: AttachmentSetup,
    writer: ScanWriter,
    state: ScanState,
    start: WalkStart | None,
) -> _Totals:
    totals = _Totals()

    def on_error(path: str, exc: Exception) -> None:
        # Listing errors are logged and skipped; they never fail the scan (docs/architecture.md#scan-job).
        totals.errors += 1
        log_event(
            ctx.logger, "scan.skipped", logging.WARNING, job=ctx.job_id, path=path, error=str(exc)
        )

    batch: list[SourceEntry] = []
    last_flush = time.monotonic()
    for entry in _listing(ctx, setup, on_error, start):
        batch.append(entry)
        if len(batch) % CHECK_ENTRIES and len(batch) < BATCH_FILES:
            continue
        ctx.check_cancelled()
        if len(batch) >= BATCH_FILES or time.monotonic() - last_flush >= BATCH_SECONDS:
            state = _flush(ctx, writer, state, batch, totals)
            batch = []
            last_flush = time.monotonic()
    ctx.check_cancelled()
    state = _flush(ctx, writer, state, batch, totals, final=True)
    totals.jobs = state.jobs_created
    return totals


def _resume_point(session: Session, attachment_id: int, setup: AttachmentSetup) -> WalkStart | None:
    """Where an interrupted first scan of a resumable source continues (scan/resume.py)."""
    if not isinstance(setup.source, ResumableSource):
        return None
    return resume_point(session, attachment_id)


def _listing(
    ctx: JobContext, setup: AttachmentSetup, on_error: ListingErrorHandler, start: WalkStart | None
) -> Iterator[SourceEntry]:
    """The source's walk, or its continuation from `start`."""
    source = setup.source
    if start is None or not isinstance(source, ResumableSource):
        return source.walk(on_error)
    log_event(
        ctx.logger,
        "scan.resume",
        job=ctx.job_id,
        directory=start.pending[0],
        after=start.after,
        pending=len(start.pending),
    )
    return source.walk_from(on_error, start)


def _flush(
    ctx: JobContext,
    writer: ScanWriter,
    state: ScanState,
    batch: list[SourceEntry],
    totals: _Totals,
    *,
    final: bool = False,
) -> ScanState:
    new_state = state
    for part in writer.split_batch(batch):
        # One transaction per part (RANGES_PER_TRANSACTION ranges at most), and more for a file
        # that makes more: the WAL stays small however many ranges one file makes.
        snapshot = new_state
        result = ctx.db.run_write(partial(writer.write_batch, snapshot=snapshot, entries=part))
        new_state = writer.commit(result)
        totals.added += result.files_added
        totals.skipped += result.files_skipped
        while result.open_file is not None:
            ctx.check_cancelled()
            snapshot, open_file = new_state, result.open_file
            result = ctx.db.run_write(
                partial(writer.continue_file, snapshot=snapshot, open_file=open_file)
            )
            new_state = writer.commit(result)
    if final:
        new_state = _finish(ctx, writer, new_state)
        ctx.db.run_write(partial(mark_listed, attachment_id=ctx.attachment_id))
    if new_state.jobs_created > state.jobs_created or final:
        _refresh_statistics(ctx, totals, final=final)
    if new_state.jobs_created > state.jobs_created:
        ctx.queued()  # the process's idle threads can start packing now
    log_event(
        ctx.logger,
        "scan.batch",
        logging.DEBUG,
        job=ctx.job_id,
        entries=len(batch),
        files_added=totals.added,
        pack_jobs=new_state.jobs_created,
    )
    return new_state
