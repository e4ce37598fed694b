"""A scan leaves PostgreSQL fresh planner statistics for the rows it added (db/statistics.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataset_worker.db import Database
from dataset_worker.db.models import JobType
from dataset_worker.db.statistics import analyze
from dataset_worker.worker.jobs.scan import job as scan_module
from tests.support.jobs import add_job, make_local_preparation, run_job

FILES = 13  # not a count an earlier test's ANALYZE would have left in pg_class


def _scan(db: Database, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for i in range(FILES):
        (source / f"f{i:02d}").write_bytes(b"x" * i)
    rows = make_local_preparation(
        db, "stats", source, tmp_path / "out", max_size=200, min_piece_size=256
    )
    run = run_job(db, add_job(db, rows.attachment_id, JobType.SCAN))
    assert run.error is None


def test_a_scan_leaves_statistics_of_its_rows(db: Database, tmp_path: Path) -> None:
    _scan(db, tmp_path)
    with db.read() as session:
        conn = session.connection()
        if db.is_sqlite:  # SQLite plans without them: no ANALYZE, so no sqlite_stat1 table
            found = conn.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE name = ?", ("sqlite_stat1",)
            )
            assert found.scalar() == 0
            return
        tuples: dict[str, float] = dict(
            conn.exec_driver_sql(
                "SELECT relname, reltuples FROM pg_class WHERE relname IN ('files', 'file_ranges')"
            ).all()
        )
    assert tuples == {"files": FILES, "file_ranges": FILES}  # ANALYZE read every row


def test_statistics_are_refreshed_as_the_rows_grow(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First at ANALYZE_FIRST files, then at each ANALYZE_GROWTH-fold, and at the end."""
    seen: list[int] = []
    real = analyze

    def counting(database: Database) -> None:
        with database.read() as session:
            seen.append(
                session.connection().exec_driver_sql("SELECT count(*) FROM files").scalar_one()
            )
        real(database)

    monkeypatch.setattr(scan_module, "analyze", counting)
    monkeypatch.setattr(scan_module, "ANALYZE_FIRST", 2)
    monkeypatch.setattr(scan_module, "ANALYZE_GROWTH", 3)
    monkeypatch.setattr(scan_module, "BATCH_FILES", 1)  # a transaction per file
    _scan(db, tmp_path)
    # max_size 200 closes a pack job every few files; a refresh is due when one closes: the
    # first with 2 files or more in (at 4), the next with 3 x 4 = 12 or more, and one at the end
    # for the 13th.
    assert seen == [4, 12, FILES]
