"""Benchmark: peak memory (RSS) of the real pack job for a 1 GiB and a 4 GiB CAR.

Each size runs in a fresh child process: it scans a source file of that size into one pack job
and packs it with `run_pack` into a CAR on the local disk, then reports its peak RSS (ru_maxrss)
before and after packing. Goal: < 300 MiB and flat in the CAR size (the CAR is streamed through
fixed buffers; only one small record per MiB block is kept for the car_blocks rows).

The source files are sparse (holes read as zeros), so only the CARs take disk space; both are
deleted at the end.

Usage: .venv/bin/python bench/pack_memory.py [--sizes-gib 1 4]
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
    from dataset_worker.db import open_database
    from dataset_worker.db.models import JobType
    from dataset_worker.worker.testing import (
        add_job,
        make_local_preparation,
        run_job,
        run_ready_jobs,
    )

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gib", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.work)
        return
    results = {}
    for size in args.sizes_gib:
        work = Path(tempfile.mkdtemp(prefix="bench-mem-", dir=os.environ.get("TMPDIR", "/var/tmp")))
        try:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(size), "--work", str(work)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[size] = json.loads(out.strip().splitlines()[-1])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for size, r in results.items():
        print(
            f"{size} GiB source → CAR {r['car_bytes'] / GIB:.3f} GiB: peak RSS {r['peak_rss_mib']:.0f} MiB "
            f"(before packing {r['rss_before_mib']:.0f} MiB), packed in {r['seconds']:.1f} s"
        )
    peaks = [r["peak_rss_mib"] for r in results.values()]
    print(
        f"largest peak: {max(peaks):.0f} MiB (goal < 300); spread across sizes: {max(peaks) - min(peaks):.0f} MiB"
    )


if __name__ == "__main__":
    main()
