"""A database holding one wide folder (docs/architecture.md#wide-directories), as pack jobs
leave it: its entries as directory_entries rows, its CID and its parent's blob set. Shared by
the memory test and `bench/widedir.py`."""

from __future__ import annotations

from pathlib import Path

from dataset_worker.content.cid import raw_cid
from dataset_worker.content.directory import build_directory
from dataset_worker.content.hamt import hamt_hash
from dataset_worker.db import open_database
from dataset_worker.db.models import Directory
from dataset_worker.worker.jobs.dirdata import WIDE, DirEntry, encode_entries
from dataset_worker.worker.jobs.widedir import build_from_rows
from tests.support.jobs import make_local_preparation

INSERT_BATCH = 50_000
FOLDER = "wide"


def wide_entry(index: int) -> tuple[bytes, bytes, int]:
    """Entry `index` of the folder: (name, CID, Tsize)."""
    name = b"file-%07d.bin" % index
    return name, raw_cid(name), index % 2048


def build_wide_folder(url: str, work: Path, entries: int) -> None:
    """A preparation whose root holds the folder `wide` of `entries` entries."""
    db = open_database(url)
    try:
        prep = make_local_preparation(db, "wide", work / "src", work / "out")
        with db.write() as session:
            wide = Directory(name=FOLDER, parent_id=prep.root_directory_id, data=WIDE)
            wide.attachment_id = prep.attachment_id
            session.add(wide)
            session.flush()
            conn = session.connection()
            rows, wide_id = [], wide.id
            for index in range(entries):
                name, cid, tsize = wide_entry(index)
                rows.append((wide_id, hamt_hash(name), name, cid, tsize))
            rows.sort()  # in key order the b-tree is written front to back: quick to build
            for start in range(0, entries, INSERT_BATCH):
                conn.exec_driver_sql(
                    "INSERT INTO directory_entries (directory_id, hash, name, cid, tsize) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows[start : start + INSERT_BATCH],
                )
            del rows
            node = build_from_rows(conn, wide_id)
            assert node is not None
            wide.cid = node[0]
            root = session.get(Directory, prep.root_directory_id)
            assert root is not None
            top = {FOLDER: DirEntry(*node)}
            root.cid, root.data = build_directory({FOLDER: node}).cid, encode_entries(top)
    finally:
        db.dispose()
