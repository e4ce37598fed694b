"""Benchmark: peak memory (RSS) of the real pack job, for big CARs and for many small files.

1. CAR size: each size runs in a fresh child process: it scans a source file of that size into
   one pack job and packs it with `run_pack` into a CAR on the local disk, then reports its peak
   RSS (ru_maxrss) before and after packing. Goal: < 300 MiB and flat in the CAR size (the CAR
   is streamed through fixed buffers). The source files are sparse (holes read as zeros), so
   only the CARs take disk space; both are deleted at the end.
2. File count: --files (default 10,000 and 100,000) files of 1 KiB, 100 per directory, scanned
   into one pack job by one child process, then packed by a fresh child process that reports
   its peak RSS. Goal: flat in the number of files (within a few MiB): block and range records
   are spooled to a temporary file and the recording transaction streams them back in batches.

Usage: .venv/bin/python bench/pack_memory.py [--sizes-gib 1 4] [--files 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1 << 30


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(size_gib: int, work: Path) -> None:
    from tests.support.jobs import (
        add_job,
        make_local_preparation,
        run_job,
        run_ready_jobs,
    )

    from dataset_worker.db import open_database
    from dataset_worker.db.models import JobType

    source = work / "src"
    source.mkdir()
    with open(source / "big.bin", "wb") as out:
        out.truncate(size_gib * GIB)
    db = open_database(f"sqlite:///{work / 'bench.db'}")
    rows = make_local_preparation(db, "mem", source, work / "out")
    scan = run_job(db, add_job(db, rows.attachment_id, JobType.SCAN))
    assert scan.error is None, scan.error
    before = peak_rss_mib()
    started = time.perf_counter()
    runs = run_ready_jobs(db, JobType.PACK)
    seconds = time.perf_counter() - started
    assert len(runs) == 1 and runs[0].error is None, runs
    car = next((work / "out").glob("*.car"))
    print(
        json.dumps(
            {
                "car_bytes": car.stat().st_size,
                "rss_before_mib": before,
                "peak_rss_mib": peak_rss_mib(),
                "seconds": seconds,
            }
        )
    )


SMALL_FILE = 1024
FILES_PER_DIRECTORY = 100


def scan_small_files(count: int, work: Path) -> None:
    """Child 1: `count` files of 1 KiB under `work`/src, scanned into one pack job."""
    from tests.support.jobs import add_job, make_local_preparation, run_job

    from dataset_worker.db import open_database
    from dataset_worker.db.models import JobType

    source = work / "src"
    for i in range(count):
        folder = source / f"d{i // FILES_PER_DIRECTORY:05d}"
        if i % FILES_PER_DIRECTORY == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:07d}.bin").write_bytes(os.urandom(SMALL_FILE))
    db = open_database(f"sqlite:///{work / 'bench.db'}")
    rows = make_local_preparation(db, "mem", source, work / "out")
    scan = run_job(db, add_job(db, rows.attachment_id, JobType.SCAN))
    assert scan.error is None, scan.error
    db.dispose()


def pack_small_files(work: Path) -> None:
    """Child 2: pack the one job scanned by child 1 and report this process's peak RSS."""
    from sqlalchemy import func, select
    from tests.support.jobs import run_ready_jobs

    from dataset_worker.db import open_database
    from dataset_worker.db.models import CarBlock, Job, JobType

    db = open_database(f"sqlite:///{work / 'bench.db'}")
    with db.read() as session:
        jobs = session.scalar(select(func.count()).where(Job.type == JobType.PACK))
    assert jobs == 1, jobs
    before = peak_rss_mib()
    started = time.perf_counter()
    runs = run_ready_jobs(db, JobType.PACK)
    seconds = time.perf_counter() - started
    assert len(runs) == 1 and runs[0].error is None, runs
    with db.read() as session:
        blocks = session.scalar(select(func.count()).select_from(CarBlock))
    print(
        json.dumps(
            {
                "car_blocks": blocks,
                "rss_before_mib": before,
                "peak_rss_mib": peak_rss_mib(),
                "seconds": seconds,
            }
        )
    )


def _run_child(*args: str) -> str:
    return subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout


def _temp_work() -> Path:
    return Path(tempfile.mkdtemp(prefix="bench-mem-", dir=os.environ.get("TMPDIR", "/var/tmp")))


def measure_file_counts(counts: list[int]) -> None:
    results = {}
    for count in counts:
        work = _temp_work()
        try:
            _run_child("--scan-files", str(count), "--work", str(work))
            out = _run_child("--pack-files", "--work", str(work))
            results[count] = json.loads(out.strip().splitlines()[-1])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for count, r in results.items():
        print(
            f"{count} files of 1 KiB in one job ({r['car_blocks']} car_blocks): peak RSS "
            f"{r['peak_rss_mib']:.1f} MiB (before packing {r['rss_before_mib']:.1f} MiB), "
            f"packed in {r['seconds']:.1f} s"
        )
    peaks = [r["peak_rss_mib"] for r in results.values()]
    print(
        f"peak RSS spread across file counts: {max(peaks) - min(peaks):.1f} MiB "
        "(goal: flat, within a few MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gib", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--files", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scan-files", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pack-files", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.work)
        return
    if args.scan_files is not None:
        scan_small_files(args.scan_files, args.work)
        return
    if args.pack_files:
        pack_small_files(args.work)
        return
    results = {}
    for size in args.sizes_gib:
        work = _temp_work()
        try:
            out = _run_child("--child", str(size), "--work", str(work))
            results[size] = json.loads(out.strip().splitlines()[-1])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for size, r in results.items():
        print(
            f"{size} GiB source → CAR {r['car_bytes'] / GIB:.3f} GiB: peak RSS {r['peak_rss_mib']:.0f} MiB "
            f"(before packing {r['rss_before_mib']:.0f} MiB), packed in {r['seconds']:.1f} s"
        )
    peaks = [r["peak_rss_mib"] for r in results.values()]
    if peaks:
        print(
            f"largest peak: {max(peaks):.0f} MiB (goal < 300); "
            f"spread across sizes: {max(peaks) - min(peaks):.0f} MiB"
        )
    if args.files:
        measure_file_counts(args.files)


if __name__ == "__main__":
    main()
