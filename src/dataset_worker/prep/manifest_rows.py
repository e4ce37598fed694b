"""Files with their ranges and pieces, read a page at a time in id order, for the exports.

A preparation can hold millions of files: the exports never load them all. Each page is one
query for the files (keyset pagination on the id) and one for their ranges with the piece
(`cars` row of the pack job) that holds each range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, exists, select
from sqlalchemy.orm import Session, aliased

from dataset_worker.content.cid import raw_digest
from dataset_worker.db.filecid import file_cid
from dataset_worker.db.models import Car, File, FileRange

PAGE = 1000


@dataclass(frozen=True, slots=True)
class RangeRow:
    """A byte range of a file: its CID and the piece CID once packed (else None)."""

    offset: int
    length: int
    cid: bytes | None
    piece_cid: bytes | None


@dataclass(frozen=True, slots=True)
class FileRow:
    """A file with its ranges in offset order."""

    id: int
    path: str
    size: int
    cid: bytes | None
    sha256: bytes | None
    ranges: list[RangeRow]

    @property
    def name(self) -> str:
        """The last component of the path."""
        return self.path[self.path.rfind("/") + 1 :]

    @property
    def packed(self) -> bool:
        """The file has its CID and every range sits in a piece."""
        return (
            self.cid is not None
            and bool(self.ranges)
            and all(r.cid is not None and r.piece_cid is not None for r in self.ranges)
        )


FileSelect = Select[int, str, int, bytes | None, bytes | None]


def files_query() -> FileSelect:
    """The columns every page reads; callers add their conditions."""
    return select(File.id, File.path, File.size, file_cid(), File.sha256)


def latest_packed_version() -> list[ColumnElement[bool]]:
    """Conditions keeping, of the rows a rescan added for one changed path, only the newest
    packed one (the one its directory lists)."""
    newer = aliased(File)
    return [
        File.cid.is_not(None),
        ~exists().where(
            newer.attachment_id == File.attachment_id,
            newer.path == File.path,
            newer.id > File.id,
            newer.cid.is_not(None),
        ),
    ]


def file_sha256(stored: bytes | None, cid: bytes | None, hashed: bool) -> bytes | None:
    """A file's sha256: `files.sha256`, or for a file of one raw leaf, which keeps none, its
    CID's digest (docs/architecture.md#file-hashes); None when the preparation does not hash
    files (`hashed` False) and nothing was recorded."""
    if stored is not None or not hashed:
        return stored
    return raw_digest(cid)


def iter_files(session: Session, query: FileSelect, *, hashed: bool) -> Iterator[FileRow]:
    """The files `query` selects, in id order, PAGE at a time, each with its ranges; `hashed`
    is the preparation's `file_hash` (see `file_sha256`)."""
    last = 0
    while True:
        rows = session.execute(query.where(File.id > last).order_by(File.id).limit(PAGE)).all()
        if not rows:
            return
        ranges = _ranges_of(session, [row[0] for row in rows])
        for file_id, path, size, cid, sha256 in rows:
            sha256 = file_sha256(sha256, cid, hashed)
            yield FileRow(file_id, path, size, cid, sha256, ranges.get(file_id, []))
        if len(rows) < PAGE:
            return
        last = rows[-1][0]


def _ranges_of(session: Session, file_ids: list[int]) -> dict[int, list[RangeRow]]:
    rows = session.execute(
        select(FileRange.file_id, FileRange.offset, FileRange.length, FileRange.cid, Car.piece_cid)
        .outerjoin(Car, Car.job_id == FileRange.job_id)
        .where(FileRange.file_id.in_(file_ids))
        .order_by(FileRange.file_id, FileRange.offset)
    )
    found: dict[int, list[RangeRow]] = {}
    for file_id, offset, length, cid, piece in rows:
        found.setdefault(file_id, []).append(RangeRow(offset, length, cid, piece))
    return found
