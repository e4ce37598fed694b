"""Wide directories: entries kept as `directory_entries` rows (docs/architecture.md#wide-directories).

A directory's entries normally live in its `data` blob, decoded and rewritten whole whenever a
pack job adds to it. Past `WIDE_AT` entries that costs memory and time in proportion to the
folder, on every job, so the entries move to one row each and the blob becomes the `WIDE`
marker. A pack job then writes only the rows it changes, and the node is rebuilt from the rows:
a HAMT as a stream in hash order (`content.hamt.stream_hamt`), so memory holds one open shard per
level, not the folder. A directory below the HAMT threshold builds one basic node, which is
small by definition (under 256 KiB of names and CIDs), so its rows are read whole.

The callers hold the directory row's lock (pack's `SELECT … FOR UPDATE`, or SQLite's write
lock), which is what keeps two jobs from writing the same rows at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from sqlalchemy import Connection, func, select

from dataset_worker.content.directory import (
    HAMT_SHARDING_SIZE,
    build_basic_directory,
    name_bytes,
)
from dataset_worker.content.hamt import BlockSink, HashedEntry, hamt_hash, stream_hamt
from dataset_worker.db.models import DirectoryEntry
from dataset_worker.worker.jobs.bulk_insert import execute_many
from dataset_worker.worker.jobs.dirdata import Block, DirEntry, decode_extras, encode_extras

WIDE_AT = 4096  # entries: a blob this big takes milliseconds to rewrite; past it, rows
STREAM_BATCH = 5000  # rows fetched at a time while streaming

NodeRoot = tuple[bytes, int]
"""(CID, boxo `Size()`) of a built directory node."""

_COLUMNS = "directory_id, hash, name, cid, tsize, extras"
_INSERT = f"INSERT INTO directory_entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT = (
    f"{_INSERT} ON CONFLICT (directory_id, hash, name) DO UPDATE SET "
    "cid = excluded.cid, tsize = excluded.tsize, extras = excluded.extras"
)
_DELETE = "DELETE FROM directory_entries WHERE directory_id = ? AND hash = ? AND name = ?"
_DELETE_IF = f"{_DELETE} AND cid = ?"


class WideEntries:
    """The changes a job makes to one wide directory, written by `resolve`.

    It answers the few operations the directory-tree upkeep uses on a blob's entries dict:
    set an entry, drop one, and drop one only while it still has a given CID.
    """

    def __init__(self, directory_id: int) -> None:
        self.directory_id = directory_id
        self._changes: dict[str, DirEntry | None] = {}  # None: remove the entry
        self._removals_if: list[tuple[str, bytes]] = []

    def __setitem__(self, name: str, entry: DirEntry) -> None:
        self._changes[name] = entry

    def pop(self, name: str, default: None = None) -> None:
        """Remove the entry `name`, if there is one."""
        self._changes[name] = None

    def remove_if(self, name: str, cid: bytes) -> None:
        """Remove the entry `name` if its CID is still `cid` (a newer version's entry stays)."""
        self._removals_if.append((name, cid))

    def resolve(self, conn: Connection) -> NodeRoot | None:
        """Write the changes, then build the directory's node from its rows; None if empty."""
        self._write(conn)
        return build_from_rows(conn, self.directory_id)

    def _write(self, conn: Connection) -> None:
        dir_id = self.directory_id
        execute_many(conn, _DELETE_IF, [(*_key(dir_id, n), cid) for n, cid in self._removals_if])
        gone = [_key(dir_id, n) for n, entry in self._changes.items() if entry is None]
        execute_many(conn, _DELETE, gone)
        kept = {n: entry for n, entry in self._changes.items() if entry is not None}
        execute_many(conn, _UPSERT, _rows(dir_id, kept))
        self._changes.clear()
        self._removals_if.clear()


def make_wide(conn: Connection, directory_id: int, entries: Mapping[str, DirEntry]) -> WideEntries:
    """Move a blob directory's entries into rows; the caller then writes the `WIDE` marker."""
    execute_many(conn, _INSERT, _rows(directory_id, entries))
    return WideEntries(directory_id)


def build_from_rows(
    conn: Connection, directory_id: int, sink: BlockSink | None = None
) -> NodeRoot | None:
    """The node of a wide directory, from its rows: (CID, Size) or None when it has no entries.

    Each of the node's blocks goes to `sink` as it is built (a HAMT's children before their
    parents); boxo's choice of basic node or HAMT follows the same estimate as for a blob.
    """
    count, estimate = conn.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(func.length(DirectoryEntry.name) + func.length(DirectoryEntry.cid)), 0
            ),
        ).where(DirectoryEntry.directory_id == directory_id)
    ).one()
    if count == 0:
        return None
    if estimate >= HAMT_SHARDING_SIZE:
        return stream_hamt(_hashed_entries(conn, directory_id), sink)
    entries = {
        name.decode("utf-8", "surrogateescape"): (cid, tsize)
        for name, cid, tsize in conn.execute(
            select(DirectoryEntry.name, DirectoryEntry.cid, DirectoryEntry.tsize).where(
                DirectoryEntry.directory_id == directory_id
            )
        )
    }
    node = build_basic_directory(entries)
    if sink is not None:
        sink(node.cid, node.block)
    return node.cid, node.size


def extra_blocks_of(conn: Connection, directory_id: int) -> Iterator[Block]:
    """The split-file blocks carried by a wide directory's entries (unsorted; may repeat)."""
    rows = conn.execute(
        select(DirectoryEntry.extras)
        .where(DirectoryEntry.directory_id == directory_id, DirectoryEntry.extras.is_not(None))
        .execution_options(yield_per=STREAM_BATCH)
    )
    for (extras,) in rows:
        yield from decode_extras(extras)


def _hashed_entries(conn: Connection, directory_id: int) -> Iterator[HashedEntry]:
    rows = conn.execute(
        select(DirectoryEntry.hash, DirectoryEntry.name, DirectoryEntry.cid, DirectoryEntry.tsize)
        .where(DirectoryEntry.directory_id == directory_id)
        .order_by(DirectoryEntry.hash, DirectoryEntry.name)  # the key's order: no sort
        .execution_options(yield_per=STREAM_BATCH)
    )
    for hash_, name, cid, tsize in rows:
        yield HashedEntry(hash_, name, cid, tsize)


def _key(directory_id: int, name: str) -> tuple[int, bytes, bytes]:
    raw = name_bytes(name)
    return directory_id, hamt_hash(raw), raw


def _rows(directory_id: int, entries: Mapping[str, DirEntry]) -> list[tuple[object, ...]]:
    return [
        (*_key(directory_id, name), entry.cid, entry.tsize, encode_extras(entry.extras))
        for name, entry in entries.items()
    ]
