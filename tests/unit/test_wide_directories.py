"""Wide directories (docs/architecture.md#wide-directories): entries kept as rows build the same
directory CIDs, DAG piece and CAR bytes as entries kept in the blob, on SQLite and PostgreSQL.

The same tree is prepared twice in one database: once with every directory in its blob (the
threshold out of reach), once with every directory of more than 8 entries moved to rows. Its wide
folder holds 5,000 files with long names, enough for boxo to make it a HAMT, a file split over
several ranges (its extra blocks travel with the entry) and a subfolder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from dataset_worker.content.car import CarReader
from dataset_worker.db import Database
from dataset_worker.db.models import Car, Directory, DirectoryEntry, JobState, JobType, PieceType
from dataset_worker.verify.readback import verify_tree
from dataset_worker.worker.jobs import dirtree
from dataset_worker.worker.jobs.dirdata import is_wide
from tests.support.jobs import (
    add_job,
    make_local_preparation,
    reference_root,
    run_job,
    scan_and_pack,
    write_files,
)

KIB, MIB = 1 << 10, 1 << 20
RANGE = 512 * KIB  # max size 2,000,000: 512 KiB ranges
WIDE_FILES = 5000

TREE: dict[str, int | bytes] = {
    **{f"w/a-file-with-a-rather-long-name-{i:05d}.txt": i % 3 for i in range(WIDE_FILES)},
    "w/split.bin": 3 * MIB + 7,
    "w/sub/inner.bin": 9,
    "top.bin": 4,
}


def _prepare(db: Database, base: Path, name: str, wide_at: int, mp: pytest.MonkeyPatch) -> int:
    """Scan and pack TREE into a new preparation; returns its attachment id."""
    mp.setattr(dirtree, "WIDE_AT", wide_at)
    write_files(base / "src", TREE)
    rows = make_local_preparation(db, name, base / "src", base / "out", max_size=2_000_000)
    runs = scan_and_pack(db, rows.attachment_id)
    assert len(runs) >= 2 and all(run.state is JobState.COMPLETE for run in runs)
    return rows.attachment_id


def _dag(db: Database, attachment: int, out: Path) -> tuple[bytes, bytes, list[object]]:
    """Run daggen: the DAG piece's root CID, piece CID and its CAR's (cid, bytes) blocks."""
    assert run_job(db, add_job(db, attachment, JobType.DAGGEN)).state is JobState.COMPLETE
    with db.read() as session:
        car = session.execute(
            select(Car).where(Car.attachment_id == attachment, Car.piece_type == PieceType.DAG)
        ).scalar_one()
        root, piece, path = car.root_cid, car.piece_cid, car.storage_path
    with open(out / path, "rb") as stream:
        blocks: list[object] = [(block.cid, block.data) for block in CarReader(stream)]
    assert root is not None
    return root, piece, blocks


def _wide_rows(db: Database, attachment: int) -> tuple[int, int]:
    """(directories stored wide, entry rows) of an attachment."""
    with db.read() as session:
        data = session.scalars(select(Directory.data).where(Directory.attachment_id == attachment))
        wide = sum(is_wide(blob) for blob in data)
        rows = session.scalar(
            select(func.count())
            .select_from(DirectoryEntry)
            .join(Directory, Directory.id == DirectoryEntry.directory_id)
            .where(Directory.attachment_id == attachment)
        )
    return wide, rows or 0


def test_rows_build_the_same_tree_and_dag_piece_as_blobs(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = _prepare(db, tmp_path / "blob", "blob", 10**9, monkeypatch)
    wide = _prepare(db, tmp_path / "wide", "wide", 8, monkeypatch)
    assert _wide_rows(db, blob) == (0, 0)
    # only w/ (5,002 entries: the files, split.bin and sub) is past 8 entries
    assert _wide_rows(db, wide) == (1, WIDE_FILES + 2)

    expected, _size = reference_root(tmp_path / "wide" / "src", RANGE) or (b"", 0)
    blob_dag = _dag(db, blob, tmp_path / "blob" / "out")
    wide_dag = _dag(db, wide, tmp_path / "wide" / "out")
    assert blob_dag[0] == wide_dag[0] == expected
    assert blob_dag == wide_dag  # same piece CID and the same blocks in the same order
    cars = sorted((tmp_path / "wide" / "out").glob("*.car"))
    assert verify_tree(cars, expected, tmp_path / "wide" / "src") == len(TREE)


def test_a_rescan_edits_the_rows_of_a_wide_directory(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attachment = _prepare(db, tmp_path, "wide", 8, monkeypatch)
    source = tmp_path / "src"
    (source / "w" / "a-file-with-a-rather-long-name-00007.txt").unlink()
    write_files(source, {"w/a-file-with-a-rather-long-name-00008.txt": 100, "w/new.bin": 5})
    (source / "w" / "sub" / "inner.bin").unlink()  # w/sub is left empty: its entry goes too
    runs = scan_and_pack(db, attachment)
    assert runs and all(run.state is JobState.COMPLETE for run in runs)

    expected, _size = reference_root(source, RANGE) or (b"", 0)
    with db.read() as session:
        root = session.scalar(
            select(Directory.cid).where(
                Directory.attachment_id == attachment, Directory.parent_id.is_(None)
            )
        )
    assert root == expected
    # 5,002 - 1 removed - sub + new.bin; the replaced file keeps its one row
    assert _wide_rows(db, attachment) == (1, WIDE_FILES + 2 - 2 + 1)
    dag_root, _piece, _blocks = _dag(db, attachment, tmp_path / "out")
    assert dag_root == expected
