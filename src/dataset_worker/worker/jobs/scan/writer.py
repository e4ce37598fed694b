"""The database side of a scan: directories, files, ranges and pack jobs, written in batches.

Each batch of listed entries is written in one transaction with Core bulk inserts: directory rows
(one lookup per new directory, none below a directory this scan created), the batch's unknown
files with RETURNING ids, their ranges, and the pack jobs the ranges fill. Committing per batch
keeps progress across a crash; a rescan then skips the files already recorded.

Pack jobs are assigned without holding range ids in memory: every range of the attachment that
has no job yet is, by construction, part of the job being filled, in id order. So ranges from
earlier batches (and leftovers) are claimed by `id <= carried_max`; this batch's ranges by id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from dataset_worker.db import queue
from dataset_worker.db.models import Directory, File, FileRange, JobType
from dataset_worker.storage import SourceEntry
from dataset_worker.worker.jobs.bulk_insert import (
    DIRECTORIES,
    FILE_RANGES,
    FILES,
    insert_returning_ids,
)
from dataset_worker.worker.jobs.scan.batching import JobBatcher, split_file

IN_CHUNK = 500
RANGE_CHUNK = 20_000  # ranges inserted at once; a cancellation check between two chunks
CHECK_EVERY = 200  # ranges fed (each may create a pack job) between two cancellation checks
FILE_COLUMNS = ("path", "hash", "size", "last_modified_nano", "attachment_id", "directory_id")
RANGE_COLUMNS = ("offset", "length", "file_id")
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


def _range_chunks(
    file_ids: Sequence[int], rows: Sequence[tuple[object, ...]], split_size: int
) -> Iterator[list[tuple[int, int, int]]]:
    """(offset, length, file id) of the files' ranges, in order, RANGE_CHUNK at a time."""
    chunk: list[tuple[int, int, int]] = []
    for file_id, row in zip(file_ids, rows, strict=True):
        size = row[2]
        assert isinstance(size, int)
        for offset, length in split_file(size, split_size):
            chunk.append((offset, length, file_id))
            if len(chunk) >= RANGE_CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _chunks(items: Sequence[int], size: int = IN_CHUNK) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class ScanState:
    """What a scan carries from one transaction to the next (small and copyable).

    `carried_max`: the highest id of the ranges waiting in the job being filled, from earlier
    transactions (None when that job holds none of them).
    """

    batcher: JobBatcher
    carried_max: int | None = None
    jobs_created: int = 0

    def copy(self) -> ScanState:
        """A snapshot for a transaction that may be retried."""
        return ScanState(self.batcher.copy(), self.carried_max, self.jobs_created)


@dataclass
class BatchResult:
    """What one committed batch changed."""

    state: ScanState
    new_dirs: dict[str, int] = field(default_factory=dict)  # path -> id, looked up or created
    new_dir_ids: set[int] = field(default_factory=set)  # ids created in this batch
    files_added: int = 0
    files_skipped: int = 0


class ScanWriter:
    """Writes listed entries of one attachment; keeps the path → directory id cache."""

    def __init__(
        self,
        attachment_id: int,
        root_id: int,
        split_size: int,
        *,
        check_known: bool,
        check_cancelled: Callable[[], None] = lambda: None,
    ) -> None:
        self.attachment_id = attachment_id
        # Raises JobCancelled (a pause, a shutdown): the open transaction then rolls back.
        self.check_cancelled = check_cancelled
        self.split_size = split_size
        self.check_known = check_known
        self.dir_ids: dict[str, int] = {"": root_id}
        self.fresh_dirs: set[int] = set()  # created by this scan: no child can pre-exist

    # --- jobs -------------------------------------------------------------------------------

    def create_job(self, session: Session, state: ScanState, pending: list[int]) -> None:
        """Insert a ready pack job holding the carried ranges plus `pending` (this batch)."""
        job_id = queue.insert_ready(session, JobType.PACK, self.attachment_id)
        if state.carried_max is not None:
            session.execute(
                update(FileRange)
                .where(
                    FileRange.job_id.is_(None),
                    FileRange.id <= state.carried_max,
                    # Correlated: a lookup per candidate range, never a pass over all files.
                    exists().where(
                        File.id == FileRange.file_id, File.attachment_id == self.attachment_id
                    ),
                )
                .values(job_id=job_id)
                .execution_options(synchronize_session=False)
            )
        for chunk in _chunks(pending):
            session.execute(
                update(FileRange)
                .where(FileRange.id.in_(chunk))
                .values(job_id=job_id)
                .execution_options(synchronize_session=False)
            )
        state.carried_max = None
        state.jobs_created += 1
        pending.clear()

    def feed(
        self, session: Session, state: ScanState, pending: list[int], range_id: int, length: int
    ) -> None:
        """Push one range through the accumulator, creating a job when it would overflow.

        Unlike Singularity, a job is never created empty (a range too big for any job goes
        alone into its own job instead of leaving an empty one before it).
        """
        batcher = state.batcher
        if not batcher.fits(length) and batcher.count > 0:
            self.create_job(session, state, pending)
            batcher.reset()
        batcher.add(length)
        pending.append(range_id)

    def rebatch_leftovers(self, session: Session, state: ScanState) -> int:
        """Feed the attachment's ranges that have no job, in id order (docs/architecture.md#scan-job)."""
        rows = session.execute(
            select(FileRange.id, FileRange.length)
            .join(File, File.id == FileRange.file_id)
            .where(File.attachment_id == self.attachment_id, FileRange.job_id.is_(None))
            .order_by(FileRange.id)
        )
        count = 0
        for range_id, length in rows:
            if count % CHECK_EVERY == 0:
                self.check_cancelled()
            batcher = state.batcher
            if not batcher.fits(length) and batcher.count > 0:
                self.create_job(session, state, [])
                batcher.reset()
            batcher.add(length)
            # Leftovers are in id order, so the bound alone describes the pending set.
            state.carried_max = range_id
            count += 1
        return count

    def finish(self, session: Session, state: ScanState) -> None:
        """Flush the last, possibly small, job (docs/architecture.md#scan-job)."""
        if state.batcher.count > 0:
            self.create_job(session, state, [])
            state.batcher.reset()

    # --- entries ----------------------------------------------------------------------------

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
        for entry in files:
            if (entry.path, entry.size, entry.mtime_ns) in known:
                result.files_skipped += 1
                continue
            directory_id = self._ensure_dir(session, parent_path(entry.path), result)
            rows.append(
                (
                    entry.path,
                    entry.hash,  # the storage's version tag (S3 ETag), checked when packing
                    entry.size,
                    entry.mtime_ns,
                    self.attachment_id,
                    directory_id,
                )
            )
        if rows:
            self._insert_files(session, result, rows)
        return result

    def _insert_files(
        self, session: Session, result: BatchResult, rows: list[tuple[object, ...]]
    ) -> None:
        conn = session.connection()
        file_ids = insert_returning_ids(conn, FILES, FILE_COLUMNS, rows)
        pending: list[int] = []
        state = result.state
        # Ranges go in chunks, with a cancellation check between them and every few pack jobs:
        # one big file under a small max size makes millions of ranges and jobs.
        for range_rows in _range_chunks(file_ids, rows, self.split_size):
            self.check_cancelled()
            range_ids = insert_returning_ids(conn, FILE_RANGES, RANGE_COLUMNS, range_rows)
            for index, (range_id, (_offset, length, _file_id)) in enumerate(
                zip(range_ids, range_rows, strict=True)
            ):
                if index % CHECK_EVERY == 0:
                    self.check_cancelled()
                self.feed(session, state, pending, range_id, length)
        if pending:
            top = max(pending)
            state.carried_max = top if state.carried_max is None else max(state.carried_max, top)
        result.files_added = len(rows)

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
    ) -> set[tuple[str, int, int]]:
        """(path, size, mtime) of the batch's files that the attachment already has."""
        known: set[tuple[str, int, int]] = set()
        paths = [entry.path for entry in files]
        for start in range(0, len(paths), IN_CHUNK):
            rows = session.execute(
                select(File.path, File.size, File.last_modified_nano).where(
                    File.attachment_id == self.attachment_id,
                    File.path.in_(paths[start : start + IN_CHUNK]),
                )
            )
            known.update((path, size, mtime) for path, size, mtime in rows)
        return known
