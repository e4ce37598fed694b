"""Browsing a preparation's source as the scan recorded it: one folder, a page at a time.

A folder is found by walking `directories` from the attachment's root, one (parent, name) lookup
per path segment. Its entries are its sub-folders (by name), then its files (by path), each list
read through an index on the folder's id (`ix_directories_attachment_parent`,
`ix_files_directory_id`) with keyset paging: the cost of a page grows with the folder's size,
never with the size of the whole source. A changed file is a new `files` row with the same path;
only the newest row of each path is shown (a lookup in `ix_files_attachment_path` per row).

Sizes: a file's size in bytes (null when the scan could not tell); a folder's size is null, as
its total would need a walk over everything below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field
from sqlalchemy import literal, select, tuple_
from sqlalchemy.orm import Session, aliased

from dataset_worker.db import Database
from dataset_worker.db.cidkey import cid_in
from dataset_worker.db.filecid import file_cid
from dataset_worker.db.models import Car, CarBlock, Directory, File, FileRange, PieceType
from dataset_worker.defaults import DEFAULT_EXPLORE_LIMIT, MAX_EXPLORE_LIMIT
from dataset_worker.prep.errors import InvalidParameter, NotFound
from dataset_worker.prep.lookup import MAX_ID, find_preparation, is_all_digits, single_source
from dataset_worker.prep.manifest_rows import file_sha256
from dataset_worker.prep.views import View, cid_text

DEFAULT_LIMIT = DEFAULT_EXPLORE_LIMIT
MAX_LIMIT = MAX_EXPLORE_LIMIT
MAX_PATH_LENGTH = 4096  # PATH_MAX on Linux: no recorded path is longer
MAX_CURSOR_LENGTH = 20  # "d" or "f" and a row id (MAX_ID has 19 digits)

DIR, FILE = "d", "f"


class ExploreEntry(View):
    """One entry of a folder: a sub-folder or a file."""

    name: str
    is_dir: bool
    size: int | None = Field(
        description="Bytes of a file (null when unknown); always null for a folder."
    )
    cid: str | None = Field(description="The entry's CID; null until packing gives it one.")
    piece_cids: list[str] = Field(
        description="Pieces holding the entry: a file's data pieces, a folder's DAG pieces."
    )
    sha256: str | None = Field(description="Hex sha256 of a file's bytes, when recorded.")
    empty: bool = Field(
        default=False,
        description="A folder that holds no file at any depth: it never gets a CID and is not "
        "in the DAG (empty folders are not part of a dataset). Always false for a file.",
    )


class ExplorePage(View):
    """A page of a folder's entries: folders first, then files, each by name.

    `path` is the folder ("" for the root), `cid` its CID once packing has given it one. Pass
    `nextCursor` back as `cursor` for the next page (null on the last one).
    """

    preparation: str
    path: str
    cid: str | None
    entries: list[ExploreEntry]
    next_cursor: str | None


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after the folder (kind DIR) or file (kind FILE) row `row_id`."""

    kind: str
    row_id: int

    def encode(self) -> str:
        """Short text: "d123" after folder 123, "f456" after file row 456."""
        return f"{self.kind}{self.row_id}"


def parse_path(path: str | None) -> tuple[str, ...]:
    """The segments of a folder path ("" or "/" is the root); bad paths raise InvalidParameter."""
    text = path or ""
    if len(text) > MAX_PATH_LENGTH:
        raise InvalidParameter(f"path must be at most {MAX_PATH_LENGTH} characters long")
    if "\x00" in text:
        raise InvalidParameter("path must not contain NUL characters")
    text = text.strip("/")
    if not text:
        return ()
    parts = tuple(text.split("/"))
    for part in parts:
        if part in ("", ".", ".."):
            shown = part or "an empty segment (//)"
            raise InvalidParameter(
                f'path "{text}" must not contain {shown}: give a folder relative to the source'
            )
    return parts


def parse_cursor(cursor: str | None) -> Cursor | None:
    """The `nextCursor` of a previous page (None for the first page)."""
    if not cursor:
        return None
    kind, digits = cursor[:1], cursor[1:]
    if (
        len(cursor) > MAX_CURSOR_LENGTH
        or kind not in (DIR, FILE)
        or not is_all_digits(digits)
        or not 0 < int(digits) <= MAX_ID
    ):
        raise InvalidParameter(
            f'cursor "{cursor[:40]}" is not valid: pass the nextCursor of a previous page'
        )
    return Cursor(kind, int(digits))


def explore(
    db: Database,
    preparation: str | int,
    path: str | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> ExplorePage:
    """One page of the entries of folder `path` of `preparation`'s source.

    Raises InvalidParameter for a bad path, limit or cursor, and NotFound for an unknown
    preparation or a folder the scan has not recorded.
    """
    parts = parse_path(path)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    after = parse_cursor(cursor)
    with db.read() as session:
        prep = find_preparation(session, preparation)
        attachment = single_source(prep).id
        folder_id, folder_cid = _find_folder(session, prep.name, attachment, parts)
        prefix = "".join(f"{part}/" for part in parts)
        rows = _page_rows(session, attachment, folder_id, prefix, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        entries = _entries(session, prep.id, prep.file_hash, rows)
    return ExplorePage(
        preparation=prep.name,
        path="/".join(parts),
        cid=cid_text(folder_cid) or None,
        entries=entries,
        next_cursor=Cursor(rows[-1].kind, rows[-1].row_id).encode() if more else None,
    )


def _find_folder(
    session: Session, prep_name: str, attachment: int, parts: tuple[str, ...]
) -> tuple[int, bytes | None]:
    """Id and CID of the folder at `parts`, walking down from the root."""
    row = session.execute(
        select(Directory.id, Directory.cid)
        .where(Directory.attachment_id == attachment, Directory.parent_id.is_(None))
        .order_by(Directory.id)
        .limit(1)
    ).first()
    for depth, part in enumerate(parts):
        if row is None:
            break
        row = session.execute(
            select(Directory.id, Directory.cid)
            .where(
                Directory.attachment_id == attachment,
                Directory.parent_id == row.id,
                Directory.name == part,
            )
            .order_by(Directory.id)
            .limit(1)
        ).first()
        if row is None:
            _raise_not_found(session, prep_name, attachment, parts, depth)
    if row is None:
        raise NotFound(f'preparation "{prep_name}" has no root folder recorded')
    return row.id, row.cid


def _raise_not_found(
    session: Session, prep_name: str, attachment: int, parts: tuple[str, ...], depth: int
) -> None:
    """Raise NotFound for `parts`, saying whether the missing segment is a file."""
    missing = "/".join(parts[: depth + 1])
    is_file = session.scalar(
        select(literal(1)).where(File.attachment_id == attachment, File.path == missing).limit(1)
    )
    if is_file is not None:
        raise NotFound(f'"{missing}" in preparation "{prep_name}" is a file, not a folder')
    raise NotFound(
        f'folder "{"/".join(parts)}" not found in preparation "{prep_name}" '
        f'(the scan recorded no folder "{missing}")'
    )


@dataclass(frozen=True)
class _Row:
    kind: str
    name: str
    row_id: int
    size: int | None
    cid: bytes | None
    sha256: bytes | None


def _page_rows(
    session: Session,
    attachment: int,
    folder_id: int,
    prefix: str,
    after: Cursor | None,
    wanted: int,
) -> list[_Row]:
    """Up to `wanted` entries after `after`: sub-folders first, then files."""
    key = _cursor_key(session, folder_id, after) if after is not None else None
    rows: list[_Row] = []
    if after is None or after.kind == DIR:
        query = select(Directory.id, Directory.name, Directory.cid).where(
            Directory.attachment_id == attachment, Directory.parent_id == folder_id
        )
        if after is not None:
            query = query.where(
                tuple_(Directory.name, Directory.id) > tuple_(literal(key), after.row_id)
            )
        for row in session.execute(query.order_by(Directory.name, Directory.id).limit(wanted)):
            rows.append(_Row(DIR, row.name, row.id, None, row.cid, None))
    if len(rows) < wanted:
        file_after = key if after is not None and after.kind == FILE else None
        rows.extend(_file_rows(session, folder_id, prefix, file_after, wanted - len(rows)))
    return rows


def _cursor_key(session: Session, folder_id: int, after: Cursor) -> str:
    """The name (folder) or path (file) a page starts after, looked up by the cursor's row id."""
    if after.kind == DIR:
        query = select(Directory.name).where(
            Directory.id == after.row_id, Directory.parent_id == folder_id
        )
    else:
        query = select(File.path).where(File.id == after.row_id, File.directory_id == folder_id)
    key = session.scalar(query)
    if key is None:
        raise InvalidParameter(
            f'cursor "{after.encode()}" does not belong to this folder: pass the nextCursor of '
            "the previous page of the same folder"
        )
    return key


def _file_rows(
    session: Session, folder_id: int, prefix: str, after_path: str | None, wanted: int
) -> list[_Row]:
    """The newest row of each file path in the folder, by path, after `after_path`.

    `after_path` is the path of the previous page's last row, so a newer row of that path
    (recorded by a rescan between two pages) is not listed again."""
    newer = aliased(File)
    query = select(File.id, File.path, File.size, file_cid(), File.sha256).where(
        File.directory_id == folder_id,
        ~select(newer.id)
        .where(
            newer.attachment_id == File.attachment_id,
            newer.path == File.path,
            newer.id > File.id,
        )
        .exists(),
    )
    if after_path is not None:
        query = query.where(File.path > after_path)
    result = session.execute(query.order_by(File.path).limit(wanted))
    return [
        _Row(
            FILE,
            _name_in(row.path, prefix),
            row.id,
            row.size if row.size >= 0 else None,
            row.cid,
            row.sha256,
        )
        for row in result
    ]


def _name_in(path: str, prefix: str) -> str:
    """A file's name: its path without the folder's prefix."""
    return path[len(prefix) :] if path.startswith(prefix) else path.rsplit("/", 1)[-1]


def _entries(session: Session, prep_id: int, hashed: bool, rows: list[_Row]) -> list[ExploreEntry]:
    """The page's entries; `hashed` is the preparation's `file_hash` (a one-leaf file's sha256
    is its CID's digest: manifest_rows.file_sha256)."""
    # A folder without a CID is either not packed yet or empty; only the empty ones never get one.
    empty = _without_files(session, [r.row_id for r in rows if r.kind == DIR and not r.cid])
    file_pieces = _file_pieces(session, [r.row_id for r in rows if r.kind == FILE])
    dir_pieces = _dag_pieces(session, prep_id, [r.cid for r in rows if r.kind == DIR and r.cid])
    return [
        ExploreEntry(
            name=row.name,
            is_dir=row.kind == DIR,
            size=row.size,
            cid=cid_text(row.cid) or None,
            piece_cids=dir_pieces.get(row.cid or b"", [])
            if row.kind == DIR
            else file_pieces.get(row.row_id, []),
            sha256=_hex(file_sha256(row.sha256, row.cid, hashed)),
            empty=row.kind == DIR and row.row_id in empty,
        )
        for row in rows
    ]


def _hex(digest: bytes | None) -> str | None:
    return digest.hex() if digest else None


def _without_files(session: Session, folder_ids: list[int]) -> set[int]:
    """The folders of `folder_ids` that hold no file, in them or in any folder below them."""
    if not folder_ids:
        return set()
    tree = (
        select(Directory.id.label("top"), Directory.id.label("id"))
        .where(Directory.id.in_(folder_ids))
        .cte("tree", recursive=True)
    )
    child = aliased(Directory)
    tree = tree.union_all(select(tree.c.top, child.id).where(child.parent_id == tree.c.id))
    with_files = session.scalars(
        select(tree.c.top).join(File, File.directory_id == tree.c.id).distinct()
    )
    return set(folder_ids) - set(with_files)


def _file_pieces(session: Session, file_ids: list[int]) -> dict[int, list[str]]:
    """Piece CIDs of the cars holding each file's ranges, in range order, without repeats."""
    if not file_ids:
        return {}
    result = session.execute(
        select(FileRange.file_id, Car.piece_cid)
        .join(Car, Car.job_id == FileRange.job_id)
        .where(FileRange.file_id.in_(file_ids))
        .order_by(FileRange.file_id, FileRange.offset, FileRange.id)
    )
    return _grouped(result)


def _dag_pieces(session: Session, prep_id: int, cids: list[bytes]) -> dict[bytes, list[str]]:
    """Piece CIDs of the DAG pieces of the preparation that hold each directory node."""
    if not cids:
        return {}
    result = session.execute(
        select(CarBlock.cid, Car.piece_cid)
        .join(Car, Car.id == CarBlock.car_id)
        .where(
            cid_in(CarBlock.cid, cids),
            Car.preparation_id == prep_id,
            Car.piece_type == PieceType.DAG,
        )
        .order_by(Car.id)
    )
    return _grouped(result)


def _grouped(result: Any) -> dict[Any, list[str]]:
    grouped: dict[Any, list[str]] = {}
    for key, piece in result:
        text = cid_text(piece)
        found = grouped.setdefault(key, [])
        if text not in found:
            found.append(text)
    return grouped
