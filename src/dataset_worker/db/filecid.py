"""A file's CID, kept once for a file held whole by one range (docs/architecture.md#file-cids).

Such a file's CID is its range's CID, so pack stores it on the range only and leaves
`files.cid` holding `ONE_RANGE` (empty bytes); NULL still means "not packed yet", so every
`files.cid IS NOT NULL` test keeps its meaning. For a dataset of tiny files this is 36 of
about 340 database bytes a file. Readers that need the value resolve the marker: in SQL with
`file_cid()`, or in Python with `resolve()` when the range's CID is already at hand. Rows
recorded before this rule hold the whole CID, which both forms return unchanged.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, case, select

from dataset_worker.db.models import File, FileRange

ONE_RANGE = b""
"""`files.cid` of a packed file whose one range holds it whole: read the range's `cid`."""


def file_cid() -> ColumnElement[bytes | None]:
    """`files.cid` with the marker resolved, for a query over `File` (labelled `cid`)."""
    only_range = select(FileRange.cid).where(FileRange.file_id == File.id).limit(1)
    return case((File.cid == ONE_RANGE, only_range.scalar_subquery()), else_=File.cid).label("cid")


def resolve(stored: bytes | None, range_cid: bytes | None) -> bytes | None:
    """A file's CID from its stored `files.cid` and the CID of its (only) range."""
    return range_cid if stored == ONE_RANGE else stored
