"""The database side of a scan: directories, files, ranges and pack jobs, written in batches.

Each batch of listed entries is written in one transaction with Core bulk inserts: directory rows
(one lookup per new directory, none below a directory this scan created), the batch's unknown
files with RETURNING ids, their ranges, and the pack jobs the ranges fill. Committing per batch
keeps progress across a crash; a rescan then skips the files already recorded.

Every range goes in with its pack job's id. The job being filled exists from its first range
on, `created` (never claimed), and turns `ready` in the transaction that fills it: no range row
is written twice, which on PostgreSQL would leave a dead row version behind for each (a
non-HOT update: `job_id` is indexed). Only leftovers, ranges that lost their job (a dropped job,
an interrupted scan's job being filled), are given a job afterwards, by their id bounds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dataset_worker.db import queue
from dataset_worker.db.models import Directory, File, FileRange, Job, JobState, JobType
from dataset_worker.storage import SourceEntry
from dataset_worker.worker.jobs.bulk_insert import (
    DIRECTORIES,
    FILE_RANGES,
    FILES,
    insert_returning_ids,
    insert_rows,
)
from dataset_worker.worker.jobs.scan.batching import JobBatcher, split_file
from dataset_worker.worker.jobs.scan.stale import FileMarks, drop_jobs

T = TypeVar("T")
IN_CHUNK = 500
RANGE_CHUNK = 10_000  # ranges inserted, and batched into jobs, per step of a write
# Ranges per write transaction: bounds the SQLite WAL (and a PostgreSQL transaction) however
# many ranges one file makes. A file with more is recorded over several transactions.
RANGES_PER_TRANSACTION = 200_000
UNFINISHED_MTIME = -1  # an open file's mtime until its last range is in: matches no listing
CHECK_EVERY = 200  # leftover ranges fed (each may close a job) between two cancellation checks
FILE_COLUMNS = ("path", "hash", "size", "last_modified_nano", "attachment_id", "directory_id")
RANGE_COLUMNS = ("offset", "length", "file_id", "job_id")
DIRECTORY_COLUMNS = (
    "name",
    "parent_id",
    "attachment_id",
    "exported",
)  # ids per IN (…) list: far below every database's parameter limit


def parent_path(path: str) -> str:
    """`a/b/c` → `a/b`; a top-level name → `""` (the root)."""
    cut = path.rfind("/")
    return path[:cut] if cut >= 0 else ""


def _widen(bounds: tuple[int, int] | None, first: int, last: int) -> tuple[int, int]:
    """`bounds` grown to take ids `first`..`last` (ascending: leftovers come in id order)."""
    return (first, last) if bounds is None else (bounds[0], last)


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


@dataclass
class ScanState:
    """What a scan carries from one transaction to the next (small and copyable).

    `open_job`: the `created` pack job being filled (None until its first range).
    `jobs_created`: the pack jobs made ready so far.
    """

    batcher: JobBatcher
    open_job: int | None = None
    jobs_created: int = 0

    def copy(self) -> ScanState:
        """A snapshot for a transaction that may be retried."""
        return ScanState(self.batcher.copy(), self.open_job, self.jobs_created)


@dataclass
class BatchResult:
    """What one committed batch changed."""

    state: ScanState
    new_dirs: dict[str, int] = field(default_factory=dict)  # path -> id, looked up or created
    new_dir_ids: set[int] = field(default_factory=set)  # ids created in this batch
    files_added: int = 0
    files_skipped: int = 0
    open_file: OpenFile | None = None  # a file whose ranges continue in the next transaction


@dataclass(frozen=True, slots=True)
class OpenFile:
    """A file recorded over several transactions, and where its next range starts.

    Its row carries mtime -1 (UNFINISHED_MTIME) until the transaction that adds its last range
    writes the real one: after a crash in between, the next scan sees a row that matches no
    listing, retires it like any superseded version (stale.py) and records the file afresh.
    """

    file_id: int
    offset: int
    size: int
    mtime_ns: int


class ScanWriter:
    """Writes listed entries of one attachment; keeps the path → directory id cache."""

    def __init__(
        self,
        attachment_id: int,
        root_id: int,
        split_size: int,
        *,
        check_known: bool,
        marks: FileMarks | None = None,
        check_cancelled: Callable[[], None] = lambda: None,
    ) -> None:
        self.attachment_id = attachment_id
        # Raises JobCancelled (a pause, a shutdown): the open transaction then rolls back.
        self.check_cancelled = check_cancelled
        self.split_size = split_size
        self.check_known = check_known
        self.marks = marks  # which earlier rows the listing confirms or supersedes
        self.dir_ids: dict[str, int] = {"": root_id}
        self.fresh_dirs: set[int] = set()  # created by this scan: no child can pre-exist

    # --- jobs -------------------------------------------------------------------------------

    def _filling(self, session: Session, state: ScanState) -> int:
        """The id of the job being filled, inserted `created` at its first range."""
        if state.open_job is None:
            state.open_job = queue.insert_created(session, JobType.PACK, self.attachment_id)
        return state.open_job

    def _close(self, session: Session, state: ScanState) -> None:
        """The job being filled is full: created → ready."""
        assert state.open_job is not None, "a job closes only after its first range"
        queue.make_ready(session, Job.id == state.open_job, from_states=queue.FILLED_FROM)
        state.open_job = None
        state.jobs_created += 1

    def _assign(self, session: Session, job_id: int, bounds: tuple[int, int]) -> None:
        """Give `job_id` the job-less ranges of the attachment with ids within `bounds`."""
        # A scalar subquery, looked up once per candidate range by primary key. Not EXISTS:
        # PostgreSQL turns that into a hash join over every file of the attachment when its
        # statistics lag behind the scan's own inserts (always, without autovacuum), which made
        # each job's assignment cost O(files) and a 10M-file scan quadratic. The lower bound keeps
        # the id range (and so any plan over the primary key) to these ranges.
        owner = select(File.attachment_id).where(File.id == FileRange.file_id).scalar_subquery()
        session.execute(
            update(FileRange)
            .where(
                FileRange.job_id.is_(None),
                FileRange.id.between(*bounds),
                owner == self.attachment_id,
            )
            .values(job_id=job_id)
            .execution_options(synchronize_session=False)
        )

    def reopen_filling(self, session: Session) -> None:
        """Turn the jobs an interrupted scan was filling (`created` pack jobs of the attachment)
        back into leftovers: their ranges lose their job, the jobs go."""
        filling = list(
            session.scalars(
                select(Job.id).where(
                    Job.attachment_id == self.attachment_id,
                    Job.type == JobType.PACK,
                    Job.state == JobState.CREATED,
                )
            )
        )
        drop_jobs(session, filling)

    def rebatch_leftovers(self, session: Session, state: ScanState) -> int:
        """Feed the attachment's ranges that have no job, in id order (docs/architecture.md#scan-job)."""
        self.reopen_filling(session)
        rows = session.execute(
            select(FileRange.id, FileRange.length)
            .join(File, File.id == FileRange.file_id)
            .where(File.attachment_id == self.attachment_id, FileRange.job_id.is_(None))
            .order_by(FileRange.id)
        )
        count = 0
        # Leftovers are in id order, so id bounds describe the ranges each job takes. They are
        # given their job when it closes, or at the end: one UPDATE per job, not per page.
        bounds: tuple[int, int] | None = None
        for page in _batched(rows, CHECK_EVERY):
            self.check_cancelled()
            begin = 0
            for end in state.batcher.starts(length for _range_id, length in page):
                if end > begin:
                    bounds = _widen(bounds, page[begin][0], page[end - 1][0])
                if bounds is not None:
                    self._assign(session, self._filling(session, state), bounds)
                    bounds = None
                self._close(session, state)
                begin = end
            bounds = _widen(bounds, page[begin][0], page[-1][0])
            count += len(page)
        if bounds is not None:
            self._assign(session, self._filling(session, state), bounds)
        return count

    def finish(self, session: Session, state: ScanState) -> None:
        """Make the last, possibly small, job ready (docs/architecture.md#scan-job)."""
        if state.batcher.count > 0:
            self._close(session, state)
            state.batcher.reset()

    # --- entries ----------------------------------------------------------------------------

    def range_count(self, entry: SourceEntry) -> int:
        """How many ranges a listed entry makes (0 for a directory)."""
        if entry.is_dir:
            return 0
        return -(-entry.size // self.split_size) if entry.size > 0 else 1

    def split_batch(self, entries: Sequence[SourceEntry]) -> Iterator[list[SourceEntry]]:
        """The entries in parts of at most RANGES_PER_TRANSACTION ranges; a file that makes more
        comes alone (write_batch then leaves it open)."""
        # A file makes at most size / split_size + 1 ranges: when that bound is within the limit
        # for the whole batch (always, for small files), it is one part without a count per file.
        bound = len(entries) + sum(entry.size for entry in entries) // self.split_size
        if bound <= RANGES_PER_TRANSACTION:
            if entries:
                yield list(entries)
            return
        part: list[SourceEntry] = []
        count = 0
        for entry in entries:
            ranges = self.range_count(entry)
            if part and count + ranges > RANGES_PER_TRANSACTION:
                yield part
                part, count = [], 0
            part.append(entry)
            count += ranges
        if part:
            yield part

    def write_batch(
        self, session: Session, snapshot: ScanState, entries: Sequence[SourceEntry]
    ) -> BatchResult:
        """Record one batch of listed entries; pure with respect to `self` until `commit`."""
        result = BatchResult(snapshot.copy())
        files: list[SourceEntry] = []
        for entry in entries:
            if entry.is_dir:
                self._ensure_dir(session, entry.path, result)
            else:
                files.append(entry)
        known = self._known_files(session, files) if self.check_known else set()
        rows: list[tuple[object, ...]] = []
        # More ranges than one transaction takes (range_count > RANGES_PER_TRANSACTION).
        too_big_size = RANGES_PER_TRANSACTION * self.split_size
        parent, parent_id = None, 0  # listings give a folder's files in a row: one lookup each
        for entry in files:
            path, size = entry.path, entry.size
            if known and (path, size, entry.mtime_ns, entry.hash) in known:
                result.files_skipped += 1
                continue
            folder = parent_path(path)
            if folder != parent:
                parent, parent_id = folder, self._ensure_dir(session, folder, result)
            too_big = size > too_big_size
            rows.append(
                (
                    path,
                    entry.hash,  # the storage's version tag (S3 ETag), checked when packing
                    size,
                    UNFINISHED_MTIME if too_big else entry.mtime_ns,
                    self.attachment_id,
                    parent_id,
                )
            )
            if too_big:
                assert len(files) == 1, "split_batch gives a file this big a part of its own"
                result.open_file = OpenFile(0, 0, size, entry.mtime_ns)
        if rows:
            self._insert_files(session, result, rows)
        return result

    def continue_file(
        self, session: Session, snapshot: ScanState, open_file: OpenFile
    ) -> BatchResult:
        """Record the next RANGES_PER_TRANSACTION ranges of an open file; the last step writes
        its real mtime. Pure with respect to `self`, like write_batch."""
        result = BatchResult(snapshot.copy(), open_file=open_file)
        ranges = (
            (offset, min(self.split_size, open_file.size - offset), open_file.file_id)
            for offset in range(open_file.offset, open_file.size, self.split_size)
        )
        self._record_ranges(session, result, ranges)
        return result

    def _insert_files(
        self, session: Session, result: BatchResult, rows: list[tuple[object, ...]]
    ) -> None:
        """Insert the files, then their ranges and the pack jobs they fill, RANGE_CHUNK ranges
        at a time: memory stays flat however many ranges and jobs one file makes (a 300 MB file
        at a max size of 100 bytes is ten million of each)."""
        file_ids = insert_returning_ids(session.connection(), FILES, FILE_COLUMNS, rows)
        if result.open_file is not None:
            result.open_file = replace(result.open_file, file_id=file_ids[0])
        self._record_ranges(session, result, self._ranges(file_ids, rows))
        result.files_added = len(rows)

    def _record_ranges(
        self, session: Session, result: BatchResult, ranges: Iterator[tuple[int, int, int]]
    ) -> None:
        """Insert `ranges` and plan their jobs; with an open file, stop after
        RANGES_PER_TRANSACTION and say where to go on, or close the file when none is left."""
        state = result.state
        open_file = result.open_file
        limited = itertools.islice(ranges, RANGES_PER_TRANSACTION) if open_file else ranges
        last: tuple[int, int, int] | None = None
        # A cancellation check between chunks: one big file under a small max size makes
        # millions of ranges and jobs, and Ctrl-C must still stop the scan at once.
        for chunk in _batched(limited, RANGE_CHUNK):
            self.check_cancelled()
            self._insert_chunk(session, state, chunk)
            last = chunk[-1]
        if open_file is None:
            return
        offset = last[0] + last[1] if last is not None else open_file.offset
        if offset < open_file.size:
            result.open_file = replace(open_file, offset=offset)
            return
        session.execute(
            update(File)
            .where(File.id == open_file.file_id)
            .values(last_modified_nano=open_file.mtime_ns)
            .execution_options(synchronize_session=False)
        )
        result.open_file = None

    def _insert_chunk(
        self, session: Session, state: ScanState, chunk: list[tuple[int, int, int]]
    ) -> None:
        """Plan the chunk's ranges into jobs, then insert them, each with its job's id.

        The first job the chunk closes is the one being filled (it may get none of the chunk's
        ranges: a range that does not fit closes it); the others it closes are new and go in
        `ready`; the ranges after the last close start the next job being filled. Unlike
        Singularity, a job is never created empty (a range too big for any job goes alone into
        its own job instead of leaving an empty one before it).
        """
        starts = state.batcher.starts(length for _offset, length, _file_id in chunk)
        job_ids: list[int] = []
        if starts:
            job_ids.append(self._filling(session, state))
            self._close(session, state)
            more = queue.insert_ready_many(
                session, JobType.PACK, self.attachment_id, len(starts) - 1
            )
            job_ids += more
            state.jobs_created += len(more)
        rows: list[tuple[int, int, int, int]] = []
        begin = 0
        for job_id, end in zip(job_ids, starts, strict=True):
            rows += [(*each, job_id) for each in chunk[begin:end]]
            begin = end
        if begin < len(chunk):
            filling = self._filling(session, state)
            rows += [(*each, filling) for each in chunk[begin:]]
        insert_rows(session.connection(), FILE_RANGES, RANGE_COLUMNS, rows)

    def _ranges(
        self, file_ids: Sequence[int], rows: Sequence[tuple[object, ...]]
    ) -> Iterator[tuple[int, int, int]]:
        split_size = self.split_size
        for file_id, row in zip(file_ids, rows, strict=True):
            size = row[2]
            assert isinstance(size, int)
            if 0 <= size <= split_size:  # one range, the common case: no generator per file
                yield 0, size, file_id
                continue
            for offset, length in split_file(size, split_size):
                yield offset, length, file_id

    def commit(self, result: BatchResult) -> ScanState:
        """Adopt a committed batch's directory ids; returns the state to carry on with."""
        self.dir_ids.update(result.new_dirs)
        self.fresh_dirs.update(result.new_dir_ids)
        return result.state

    def _ensure_dir(self, session: Session, path: str, batch: BatchResult) -> int:
        """The id of directory `path`, creating it and any missing ancestor (FirstOrCreate on
        parent and name, docs/architecture.md#scan-job)."""
        found = self.dir_ids.get(path)
        if found is None:
            found = batch.new_dirs.get(path)
        if found is not None:
            return found
        parent_id = self._ensure_dir(session, parent_path(path), batch)
        name = path[path.rfind("/") + 1 :]
        dir_id = None
        if parent_id not in self.fresh_dirs and parent_id not in batch.new_dir_ids:
            dir_id = session.scalar(
                select(func.min(Directory.id)).where(
                    Directory.parent_id == parent_id, Directory.name == name
                )
            )
        if dir_id is None:
            row = (name, parent_id, self.attachment_id, False)
            (dir_id,) = insert_returning_ids(
                session.connection(), DIRECTORIES, DIRECTORY_COLUMNS, [row]
            )
            batch.new_dir_ids.add(dir_id)
        batch.new_dirs[path] = dir_id
        return dir_id

    def _known_files(
        self, session: Session, files: Sequence[SourceEntry]
    ) -> set[tuple[str, int, int, str]]:
        """(path, size, mtime, version tag) of the batch's files that the attachment already
        has. The tag (an S3 ETag) matters: an object rewritten within the same second keeps its
        listed mtime."""
        known: set[tuple[str, int, int, str]] = set()
        listed = {(entry.path, entry.size, entry.mtime_ns, entry.hash) for entry in files}
        paths = [entry.path for entry in files]
        marks = self.marks
        for start in range(0, len(paths), IN_CHUNK):
            rows = session.execute(
                select(File.id, File.path, File.size, File.last_modified_nano, File.hash).where(
                    File.attachment_id == self.attachment_id,
                    File.path.in_(paths[start : start + IN_CHUNK]),
                )
            )
            for file_id, path, size, mtime, tag in rows:
                version = (path, size, mtime, tag)
                if version in listed:
                    known.add(version)
                    if marks is not None:
                        marks.mark_current(file_id)
                elif marks is not None:
                    marks.mark_superseded(file_id)
        return known
