"""A file that makes more ranges than one write transaction may hold is recorded over several
(the WAL stays small), and a crash half way leaves nothing wrong: the next scan retires the
unfinished row and records the file afresh; the dataset still comes out right (SQLite and
PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dataset_worker.db import Database
from dataset_worker.db.models import Directory, File, FileRange, JobState, JobType
from dataset_worker.prep.retry import retry_jobs
from dataset_worker.worker.jobs.scan import writer as writer_module
from dataset_worker.worker.jobs.scan.batching import range_split_size
from tests.support.jobs import (
    add_job,
    make_local_preparation,
    reference_root,
    run_job,
    run_ready_jobs,
    write_files,
)

MAX_SIZE = 60_000  # ranges of 16 KiB, three per pack job
BIG = 500_000  # 31 ranges


@pytest.fixture(autouse=True)
def small_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "RANGES_PER_TRANSACTION", 8)
    monkeypatch.setattr(writer_module, "RANGE_CHUNK", 3)


def _big_file(db: Database, attachment_id: int) -> list[tuple[int, int, int]]:
    with db.read() as session:
        rows = session.execute(
            select(File.id, File.size, File.last_modified_nano).where(
                File.attachment_id == attachment_id, File.path == "big.bin"
            )
        ).all()
    return [(row[0], row[1], row[2]) for row in rows]


def _covered(db: Database, file_id: int) -> list[tuple[int, int]]:
    with db.read() as session:
        rows = session.execute(
            select(FileRange.offset, FileRange.length)
            .where(FileRange.file_id == file_id)
            .order_by(FileRange.offset)
        ).all()
    return [(row[0], row[1]) for row in rows]


def test_a_big_file_spans_transactions_and_survives_a_crash_half_way(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src"
    write_files(source, {"a.txt": b"a", "big.bin": BIG, "z/last.bin": 20_000})
    mtime = os.stat(source / "big.bin").st_mtime_ns
    rows = make_local_preparation(
        db, "spans", source, tmp_path / "out", max_size=MAX_SIZE, min_piece_size=1 << 16
    )
    split = range_split_size(MAX_SIZE)

    # A crash after the first transaction of the big file.
    original = writer_module.ScanWriter.continue_file

    def crash(*args: object, **kwargs: object) -> object:
        raise RuntimeError("killed half way")

    monkeypatch.setattr(writer_module.ScanWriter, "continue_file", crash)
    scan = add_job(db, rows.attachment_id, JobType.SCAN)
    assert run_job(db, scan).state is JobState.ERROR
    [(partial_id, size, partial_mtime)] = _big_file(db, rows.attachment_id)
    assert (size, partial_mtime) == (BIG, writer_module.UNFINISHED_MTIME)
    assert len(_covered(db, partial_id)) == 8  # one transaction's worth

    monkeypatch.setattr(writer_module.ScanWriter, "continue_file", original)
    retry_jobs(db, "spans", "scan")
    assert run_job(db, scan).state is JobState.COMPLETE
    [(file_id, size, real_mtime)] = _big_file(db, rows.attachment_id)  # the partial one retired
    assert file_id != partial_id and real_mtime == mtime
    ranges = _covered(db, file_id)
    assert ranges == [(offset, min(split, BIG - offset)) for offset in range(0, BIG, split)]

    packs = run_ready_jobs(db, JobType.PACK, attachment_id=rows.attachment_id)
    assert packs and all(run.state is JobState.COMPLETE for run in packs), packs
    assert run_job(db, add_job(db, rows.attachment_id, JobType.DAGGEN)).state is JobState.COMPLETE
    with db.read() as session:
        root = session.scalar(
            select(Directory.cid).where(
                Directory.attachment_id == rows.attachment_id, Directory.parent_id.is_(None)
            )
        )
        files = session.scalar(select(func.count()).where(File.attachment_id == rows.attachment_id))
    expected = reference_root(source, split)
    assert expected is not None and root == expected[0]
    assert files == 3
