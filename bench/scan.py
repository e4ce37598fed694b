"""Benchmark: files recorded per second by the scan job on a generated tree (goal ≥ 10,000/s).

Builds a tree of empty and tiny files (100 per folder, nested two levels), then runs the real
scan handler against a fresh SQLite database (or --database-url). The listing alone
(LocalSource.walk, no database) is timed in the same run as a baseline, so the ratio shows how
much the database side costs. A second scan of the unchanged tree measures the incremental skip path.

Usage: .venv/bin/python bench/scan.py [--files 100000] [--database-url URL] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select
from tests.support.jobs import add_job, make_local_preparation, run_job

from dataset_worker.db import open_database
from dataset_worker.db.models import File, JobType
from dataset_worker.storage import LocalSource

PER_FOLDER = 100


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = (
            root / f"d{i // (PER_FOLDER * PER_FOLDER):03d}" / f"e{i // PER_FOLDER % PER_FOLDER:03d}"
        )
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file {i:07d}.bin").write_bytes(b"x" * (i % 7))


def list_only(root: Path) -> int:
    return sum(1 for entry in LocalSource(root).walk(lambda _p, _e: None) if not entry.is_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--keep", type=Path, help="reuse/keep the generated tree in this folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    tree = args.keep or work / "tree"
    try:
        if not (tree / "d000").exists():
            started = time.perf_counter()
            make_tree(tree, args.files)
            print(f"generated {args.files} files in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        listed = list_only(tree)
        list_seconds = time.perf_counter() - started
        db = open_database(args.database_url or f"sqlite:///{work / 'bench.db'}")
        rows = make_local_preparation(db, f"bench-{time.time_ns()}", tree, work / "out")
        started = time.perf_counter()
        run = run_job(db, add_job(db, rows.attachment_id, JobType.SCAN))
        scan_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rescan = run_job(db, add_job(db, rows.attachment_id, JobType.SCAN))
        rescan_seconds = time.perf_counter() - started
        with db.read() as session:
            recorded = session.scalar(
                select(func.count()).where(File.attachment_id == rows.attachment_id)
            )
        db.dispose()
        assert run.error is None and rescan.error is None, (run.error, rescan.error)
        assert recorded == listed, (recorded, listed)
        print(f"database:          {db.engine.dialect.name}")
        print(f"listing only:      {listed / list_seconds:10,.0f} files/s")
        print(f"scan (recorded):   {recorded / scan_seconds:10,.0f} files/s  ({scan_seconds:.2f}s)")
        print(
            f"rescan (skipped):  {listed / rescan_seconds:10,.0f} files/s  ({rescan_seconds:.2f}s)"
        )
        print(f"scan / listing:    {list_seconds / scan_seconds:10.3f}")
        print(f"goal ≥ 10,000 files/s: {'met' if recorded / scan_seconds >= 10_000 else 'NOT met'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
