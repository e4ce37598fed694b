"""A rescan re-plans the work around files that changed or vanished (docs/architecture.md#scan-job).

While the scan walks the source it marks, in two bitmaps over the ids the attachment had when
the scan began, the file rows that are still current (same path, size, mtime) and the rows that
a listed path has superseded (another size or mtime). After the walk every earlier row that is
superseded, or was not listed at all, is **stale**, and `retire_stale` removes it from the plan:

- the pack jobs that are not complete and hold a range of a stale file are deleted (a running
  one is stopped by the pause monitor and records nothing); their other ranges lose their job
  and are batched again into new pack jobs by the scan;
- the stale file's ranges that no completed job packed are deleted, and so is the file row when
  no range is left;
- a stale file that is already in the directory tree is taken out of it, so the DAG is built
  from the current tree; completed pieces are left exactly as they are.

Memory: the bitmaps take one bit per id in the range, whatever the number of pack jobs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.filecid import file_cid
from dataset_worker.db.models import File, FileRange, Job, JobState, JobType
from dataset_worker.worker.jobs.dirtree import remove_entries

PAGE = 1000  # stale candidates read, and retired, per transaction


class FileMarks:
    """Which of the attachment's file rows (ids `low`..`high` when the scan began) the walk saw.

    `current`: listed with the recorded size and mtime; `superseded`: the path was listed, with
    another size or mtime. Rows created by this scan have higher ids and are never stale.
    """

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high
        bits = max(high - low + 1, 0)
        self._current = bytearray((bits + 7) // 8)
        self._superseded = bytearray((bits + 7) // 8)

    @classmethod
    def of_attachment(cls, session: Session, attachment_id: int) -> FileMarks:
        """Marks sized for the attachment's file ids right now."""
        low, high = session.execute(
            select(func.min(File.id), func.max(File.id)).where(File.attachment_id == attachment_id)
        ).one()
        return cls(low or 1, high or 0)

    def _set(self, bitmap: bytearray, file_id: int) -> None:
        if self.low <= file_id <= self.high:
            offset = file_id - self.low
            bitmap[offset >> 3] |= 1 << (offset & 7)

    def _get(self, bitmap: bytearray, file_id: int) -> bool:
        offset = file_id - self.low
        return bool(bitmap[offset >> 3] & (1 << (offset & 7)))

    def mark_current(self, file_id: int) -> None:
        """The row is the listed version of its path."""
        self._set(self._current, file_id)

    def mark_superseded(self, file_id: int) -> None:
        """The row's path was listed with another size or mtime."""
        self._set(self._superseded, file_id)

    def is_stale(self, file_id: int, *, listing_complete: bool) -> bool:
        """Stale: superseded, or (only when every directory could be listed) not listed."""
        if not self.low <= file_id <= self.high:
            return False
        if self._get(self._superseded, file_id):
            return True
        return listing_complete and not self._get(self._current, file_id)


@dataclass(frozen=True, slots=True)
class StaleFile:
    """A file row that no longer describes the source."""

    id: int
    path: str
    cid: bytes | None
    directory_id: int | None


@dataclass
class Retired:
    """What `retire_stale` changed."""

    files: int = 0
    jobs_dropped: int = 0
    ranges_dropped: int = 0
    rows_deleted: int = 0

    def add(self, other: Retired) -> None:
        """Add another page's counts."""
        self.files += other.files
        self.jobs_dropped += other.jobs_dropped
        self.ranges_dropped += other.ranges_dropped
        self.rows_deleted += other.rows_deleted


def stale_files(
    db: Database, attachment_id: int, marks: FileMarks, *, listing_complete: bool
) -> Iterator[list[StaleFile]]:
    """The stale rows among ids `marks.low`..`marks.high`, a page at a time, in id order."""
    last = marks.low - 1
    while last < marks.high:
        with db.read() as session:
            rows = session.execute(
                select(File.id, File.path, file_cid(), File.directory_id)
                .where(File.attachment_id == attachment_id, File.id > last)
                .where(File.id <= marks.high)
                .order_by(File.id)
                .limit(PAGE)
            ).all()
        if not rows:
            return
        last = rows[-1][0]
        page = [
            StaleFile(*row)
            for row in rows
            if marks.is_stale(row[0], listing_complete=listing_complete)
        ]
        if page:
            yield page


def retire_stale(session: Session, files: Sequence[StaleFile]) -> Retired:
    """Take `files` out of the plan, in the caller's write transaction (see the module doc)."""
    ids = [f.id for f in files]
    jobs = _lock_unfinished_jobs(session, ids)
    # Their ranges go back to "no job yet"; the scan batches the current ones again.
    drop_jobs(session, jobs)
    dropped = session.execute(
        delete(FileRange)
        .where(FileRange.file_id.in_(ids), FileRange.job_id.is_(None))
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    empty = session.scalars(
        select(File.id).where(File.id.in_(ids), ~exists().where(FileRange.file_id == File.id))
    ).all()
    if empty:
        session.execute(
            delete(File).where(File.id.in_(empty)).execution_options(synchronize_session=False)
        )
    in_tree = [
        (f.directory_id, f.path[f.path.rfind("/") + 1 :], f.cid)
        for f in files
        if f.cid is not None and f.directory_id is not None
    ]
    remove_entries(session, in_tree)
    return Retired(len(files), len(jobs), max(int(dropped or 0), 0), len(empty))


def drop_jobs(session: Session, jobs: Sequence[int]) -> None:
    """Delete pack jobs that hold no piece; their ranges go back to having no job (leftovers,
    which the scan batches again)."""
    if not jobs:
        return
    session.execute(
        update(FileRange)
        .where(FileRange.job_id.in_(jobs))
        .values(job_id=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(Job).where(Job.id.in_(jobs)).execution_options(synchronize_session=False)
    )


def _lock_unfinished_jobs(session: Session, file_ids: Sequence[int]) -> list[int]:
    """Lock the pack jobs that are not complete and hold a range of these files.

    Locked rows are checked again after the lock (PostgreSQL re-reads a row it waited for), so a
    job that completed meanwhile is left alone with its ranges.
    """
    candidates = select(FileRange.job_id).where(
        FileRange.file_id.in_(file_ids), FileRange.job_id.is_not(None)
    )
    return list(
        session.scalars(
            select(Job.id)
            .where(
                Job.id.in_(candidates.scalar_subquery()),
                Job.type == JobType.PACK,
                Job.state != JobState.COMPLETE,
            )
            .order_by(Job.id)
            .with_for_update()
        ).all()
    )
