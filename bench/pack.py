"""Benchmark: the real pack job end to end, against hashlib.sha256 and across 1 vs 2 jobs at once.

Two source files of --file-mib each (default 1 GiB, so ≥ 2 GiB in all) are read once to sit in
the page cache, scanned into one pack job per file, and packed by the real `run_pack` handler
into CAR files in --output-dir (default: a folder on the local disk; every CAR is fsynced before
its rename, so the disk's write speed is part of the figure). In the same run:
- baseline: hashlib.sha256 over the same files read from the page cache;
- 1 job at a time with the read-ahead a worker chooses at --concurrency 1 (on, with 2+ cores);
- 2 jobs at once with the read-ahead a worker chooses at --concurrency 2 (off, on 2 cores);
- 1 job at a time with read-ahead off: the same pipeline as the 2-job case, for its scaling;
- sha256 over the two files in two threads: the scaling the (shared) machine allows right now;
- 1 job at a time as the first pack case but with the per-file sha256 off (`--no-file-hash`):
  what recording each file's hash for manifests costs (every other pack case hashes, the default).
Each case runs --runs times, interleaved; medians are reported, as MB/s (10^6 bytes/s).
Goals: pack / sha256 ≥ 0.15 (one job); concurrency 2 / concurrency 1 ≥ 1.7. "cores busy" is
this process's CPU time over wall time: it shows how much of the machine each case could use.

Usage: .venv/bin/python bench/pack.py [--file-mib 1024] [--runs 3] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import delete, select, update
from tests.support.jobs import add_job, make_local_preparation, new_worker, run_job

from dataset_worker.db import Database, open_database
from dataset_worker.db.models import Car, Job, JobState, JobType, Preparation
from dataset_worker.worker.runtime.config import choose_read_ahead, usable_cpus
from dataset_worker.worker.runtime.context import JobContext

MIB = 1 << 20


def make_source(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = folder / f"data{i}.bin"
        with open(path, "wb") as out:
            left = size
            while left:
                step = min(left, 64 * MIB)
                out.write(os.urandom(step))
                left -= step
        paths.append(path)
    return paths


def sha256_files(paths: list[Path]) -> None:
    buffer = bytearray(MIB)
    view = memoryview(buffer)
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as stream:
            while got := stream.readinto(view):
                digest.update(view[:got])
        digest.digest()


def in_threads(groups: list[list[Path]]) -> None:
    """sha256 of each group of files in its own thread, all at once (the machine's own scaling)."""
    pool = [threading.Thread(target=sha256_files, args=(group,)) for group in groups]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def pack_jobs(
    db: Database,
    jobs: list[int],
    output: Path,
    threads: int,
    read_ahead: bool,
    file_hash: bool = True,
) -> None:
    """Reset the jobs (and the file-hash switch), remove earlier CARs, then pack every job with
    `threads` threads."""
    with db.write() as session:
        session.execute(delete(Car))
        session.execute(update(Job).where(Job.id.in_(jobs)).values(state=JobState.READY))
        session.execute(update(Preparation).values(file_hash=file_hash))
    for car in output.glob("*.car"):
        car.unlink()
    errors: list[BaseException] = []

    def tune(ctx: JobContext) -> None:
        ctx.read_ahead = read_ahead

    def work(mine: list[int]) -> None:
        worker = new_worker(db)
        for job_id in mine:
            run = run_job(db, job_id, worker_id=worker, before=tune)
            if run.error is not None:
                errors.append(run.error)

    pool = [threading.Thread(target=work, args=(jobs[i::threads],)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise RuntimeError(f"pack failed: {errors[0]}")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def medians(
    cases: dict[str, Callable[[], None]], runs: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall seconds and median cores used (CPU seconds / wall seconds) per case."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    cores: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            started, cpu = time.perf_counter(), cpu_seconds()
            case()
            wall = time.perf_counter() - started
            times[name].append(wall)
            cores[name].append((cpu_seconds() - cpu) / wall)
    return (
        {name: statistics.median(values) for name, values in times.items()},
        {name: statistics.median(values) for name, values in cores.items()},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output-dir", type=Path, help="where CARs go (default: local disk)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pack-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    output = (args.output_dir or work / "out") / f"bench-{os.getpid()}"
    try:
        size = args.file_mib * MIB
        paths = make_source(work / "src", 2, size)
        sha256_files(paths)  # warm the page cache
        db = open_database(f"sqlite:///{work / 'bench.db'}")
        # max size 1.5x a file: one pack job per file (two ranges each).
        rows = make_local_preparation(db, "bench", work / "src", output, max_size=size * 3 // 2)
        scan = run_job(db, add_job(db, rows.attachment_id, JobType.SCAN))
        assert scan.error is None, scan.error
        with db.read() as session:
            jobs = list(session.scalars(select(Job.id).where(Job.type == JobType.PACK)))
        assert len(jobs) == 2, jobs
        total = 2 * size
        # What a worker process chooses at --concurrency 1 and 2 on this machine.
        chosen1, chosen2 = choose_read_ahead(1), choose_read_ahead(2)
        one, two, one_off, one_no_hash = (
            f"pack 1 job, read-ahead {_on(chosen1)} (worker's choice at concurrency 1)",
            f"pack 2 jobs, read-ahead {_on(chosen2)} (worker's choice at concurrency 2)",
            "pack 1 job, read-ahead off",
            f"pack 1 job, read-ahead {_on(chosen1)}, file hash off",
        )
        result, cores = medians(
            {
                "sha256": lambda: sha256_files(paths),
                "sha256 2 threads": lambda: in_threads([[p] for p in paths]),
                one: lambda: pack_jobs(db, jobs, output, 1, chosen1),
                two: lambda: pack_jobs(db, jobs, output, 2, chosen2),
                one_off: lambda: pack_jobs(db, jobs, output, 1, False),
                one_no_hash: lambda: pack_jobs(db, jobs, output, 1, chosen1, file_hash=False),
            },
            args.runs,
        )
        db.dispose()
        mbps = {name: total / seconds / 1e6 for name, seconds in result.items()}
        print(
            f"bytes per case: {total / MIB:.0f} MiB; {usable_cpus()} usable CPUs; CARs in {output.parent}"
        )
        for name, value in mbps.items():
            print(
                f"{name:64s} {value:6.0f} MB/s  ({result[name]:.2f} s, {cores[name]:.2f} cores busy)"
            )
        print(
            f"pack / sha256 (worker's choice, 1 job):            {mbps[one] / mbps['sha256']:.3f}  (goal >= 0.15)"
        )
        print(
            f"pack / sha256 (read-ahead off, 1 job):             {mbps[one_off] / mbps['sha256']:.3f}"
        )
        print(
            f"concurrency 2 / concurrency 1 (worker's choices):  {mbps[two] / mbps[one]:.2f}   (goal >= 1.7)"
        )
        print(
            f"concurrency 2 / concurrency 1 (same pipeline, off): {mbps[two] / mbps[one_off]:.2f}   (goal >= 1.7)"
        )
        print(
            f"file hash on / off (1 job, worker's choice):      {mbps[one] / mbps[one_no_hash]:.3f}"
            "  (1.0 = free)"
        )
        machine = mbps["sha256 2 threads"] / mbps["sha256"]
        print(f"sha256 2 threads / 1: {machine:.2f} (what the machine itself gave two threads)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(output, ignore_errors=True)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


if __name__ == "__main__":
    main()
