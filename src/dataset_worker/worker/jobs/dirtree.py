"""Directory tree upkeep at the end of a pack job (docs/architecture.md#directory-tree-upkeep), without Singularity's race.

Files finalised by the job become entries of their directory (name → file CID, Tsize = file
size). Every directory from those up to the root is then rebuilt bottom-up: a parent's entry for
a child directory is (child CID, child `Size()`), which is cumulative. Singularity reads and
rewrites these rows without locks, so two pack jobs finishing together can lose an entry; here
the rows are locked first (`SELECT … FOR UPDATE` in ascending id order on PostgreSQL, SQLite's
database write lock otherwise) and read only once locked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataset_worker.content.directory import directory_from_links
from dataset_worker.db.models import Directory
from dataset_worker.worker.jobs.bulk_insert import execute_many
from dataset_worker.worker.jobs.dirdata import (
    WIDE,
    DirEntry,
    Entries,
    decode_entries,
    encode_sorted,
    is_wide,
    sorted_entries,
)
from dataset_worker.worker.jobs.widedir import WIDE_AT, NodeRoot, WideEntries, make_wide

DirChanges = Entries | WideEntries
"""What the upkeep edits for one directory: its decoded blob, or a wide directory's changes."""

IN_CHUNK = 500


class FinalisedFile(NamedTuple):
    """A file whose CID became known in this job, as its directory will list it."""

    directory_id: int
    name: str
    cid: bytes
    size: int
    extras: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class _DirRow:
    parent_id: int | None
    name: str


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), IN_CHUNK):
        yield ids[start : start + IN_CHUNK]


def update_directories(session: Session, files: Sequence[FinalisedFile]) -> int:
    """Add `files` to their directories and re-resolve every directory up to the root, in the
    caller's transaction. Returns the number of directory rows rewritten."""
    if not files:
        return 0
    tree = _load_ancestry(session, {f.directory_id for f in files})
    entries = _lock_and_read(session, sorted(tree))
    for f in files:
        entries[f.directory_id][f.name] = DirEntry(f.cid, f.size, f.extras)
    return _rebuild(session, tree, entries)


def remove_entries(session: Session, removals: Sequence[tuple[int, str, bytes]]) -> int:
    """Remove the entries (directory id, name, CID) whose CID is still the given one, and
    re-resolve every directory up to the root, in the caller's transaction. A directory left
    empty loses its CID and its entry in its parent, as an empty directory never had one.
    Returns the number of directory rows rewritten."""
    if not removals:
        return 0
    tree = _load_ancestry(session, {dir_id for dir_id, _name, _cid in removals})
    entries = _lock_and_read(session, sorted(tree))
    for dir_id, name, cid in removals:
        current = entries[dir_id]
        if isinstance(current, WideEntries):
            current.remove_if(name, cid)
            continue
        entry = current.get(name)
        if entry is not None and entry.cid == cid:  # a newer version's entry stays
            del current[name]
    return _rebuild(session, tree, entries)


def _rebuild(session: Session, tree: dict[int, _DirRow], entries: dict[int, DirChanges]) -> int:
    """Rebuild the directories of `tree` bottom-up from `entries` and write them."""
    depth = _depths(tree)
    updates: list[tuple[object, ...]] = []
    for dir_id in sorted(tree, key=lambda d: depth[d], reverse=True):
        row = tree[dir_id]
        root, data = _resolve(session, dir_id, entries)
        if row.parent_id is not None:
            parent = entries[row.parent_id]
            if root is not None:
                parent[row.name] = DirEntry(*root)
            else:
                parent.pop(row.name, None)
        updates.append((root[0] if root else None, data, False, dir_id))
    execute_many(
        session.connection(),
        "UPDATE directories SET cid = ?, data = ?, exported = ? WHERE id = ?",
        updates,
    )
    return len(updates)


def _resolve(
    session: Session, dir_id: int, entries: dict[int, DirChanges]
) -> tuple[NodeRoot | None, bytes]:
    """The directory's node (None when empty) and the `data` to store for it; a blob that has
    grown past WIDE_AT entries becomes rows here."""
    current = entries[dir_id]
    if not isinstance(current, WideEntries) and len(current) > WIDE_AT:
        current = entries[dir_id] = make_wide(session.connection(), dir_id, current)
    if isinstance(current, WideEntries):
        return current.resolve(session.connection()), WIDE
    items = sorted_entries(current)  # sorted once for both the node and the blob
    if not items:
        return None, encode_sorted(items)
    node = directory_from_links(items)
    return (node.cid, node.size), encode_sorted(items)


def _load_ancestry(session: Session, start: set[int]) -> dict[int, _DirRow]:
    """Parent and name of the given directories and all their ancestors (unlocked: immutable)."""
    tree: dict[int, _DirRow] = {}
    wanted = set(start)
    while wanted:
        batch = sorted(wanted)
        wanted = set()
        for chunk in _chunks(batch):
            rows = session.execute(
                select(Directory.id, Directory.parent_id, Directory.name).where(
                    Directory.id.in_(chunk)
                )
            )
            for dir_id, parent_id, name in rows:
                tree[dir_id] = _DirRow(parent_id, name)
                if parent_id is not None and parent_id not in tree:
                    wanted.add(parent_id)
        missing = [d for d in batch if d not in tree]
        if missing:
            raise LookupError(f"directory rows {missing[:5]} are missing (deleted meanwhile?)")
        wanted -= tree.keys()
    return tree


def _lock_and_read(session: Session, ids: list[int]) -> dict[int, DirChanges]:
    """Lock the rows in ascending id order (so concurrent jobs cannot deadlock) and decode them
    (a wide directory's rows are only written, not read, here)."""
    entries: dict[int, DirChanges] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Directory.id, Directory.data)
            .where(Directory.id.in_(chunk))
            .order_by(Directory.id)
            .with_for_update()
        )
        for dir_id, data in rows:
            if is_wide(data):
                entries[dir_id] = WideEntries(dir_id)
                continue
            try:
                entries[dir_id] = decode_entries(data)
            except ValueError as exc:
                raise ValueError(f"directory {dir_id}: {exc}") from None
    return entries


def _depths(tree: dict[int, _DirRow]) -> dict[int, int]:
    depth: dict[int, int] = {}

    def of(dir_id: int) -> int:
        known = depth.get(dir_id)
        if known is not None:
            return known
        chain = []
        current: int | None = dir_id
        while current is not None and current not in depth:
            chain.append(current)
            current = tree[current].parent_id
        base = -1 if current is None else depth[current]
        for node in reversed(chain):
            base += 1
            depth[node] = base
        return depth[dir_id]

    for dir_id in tree:
        of(dir_id)
    return depth
