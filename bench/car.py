"""Benchmark: writing the CAR of one 1 GiB range against hashlib.sha256 of the same bytes.

The CAR case is the pack job's data path without commP: read the range from the page cache in
1 MiB chunks, sha256 each chunk into a raw CID, build the parent node, frame everything as CARv1
and write it to a new file on local disk. The baseline hashes the same file with hashlib.sha256,
read from the page cache the same way (1 MiB readinto); a second baseline hashes the bytes
already in memory. Cases alternate run by run, each after os.sync(), and medians are printed
(MB = 10^6 bytes).

Usage: .venv/bin/python bench/car.py [--size-mib 1024] [--runs 5] [--dir /tmp] [--keep-source]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dataset_worker.content.car import CarWriter
from dataset_worker.content.chunker import CHUNK_SIZE
from dataset_worker.content.packer import RangeSource, pack_ranges

GOAL = 0.8


def make_source(path: Path, size: int) -> None:
    """Random bytes (incompressible, no dedup), then read once so they sit in the page cache."""
    if not path.exists() or path.stat().st_size != size:
        with open(path, "wb") as out:
            for start in range(0, size, CHUNK_SIZE):
                out.write(os.urandom(min(CHUNK_SIZE, size - start)))
    sha256_file(path)


def sha256_file(path: Path) -> None:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as stream:
        while got := stream.readinto(buffer):
            digest.update(view[:got])
    digest.digest()


def sha256_memory(data: memoryview) -> None:
    digest = hashlib.sha256()
    for start in range(0, len(data), CHUNK_SIZE):
        digest.update(data[start : start + CHUNK_SIZE])
    digest.digest()


def write_car(source: Path, target: Path, size: int) -> None:
    with open(target, "wb") as out:
        packed = pack_ranges(
            [RangeSource("bench", 0, size, lambda: open(source, "rb"))], CarWriter(out)
        )
    assert packed.car_size == target.stat().st_size


def medians(
    cases: dict[str, Callable[[], None]], runs: int, after: Callable[[], None]
) -> dict[str, float]:
    """Median seconds per case, the cases interleaved run by run; `after` runs untimed."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            # Start every case with no dirty pages: otherwise the previous run's writeback
            # throttles this run's writes and the figures measure the disk, not this code.
            os.sync()
            start = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - start)
            after()
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="range size (MiB)")
    parser.add_argument("--runs", type=int, default=5, help="runs per case (median is shown)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="work dir")
    parser.add_argument("--keep-source", action="store_true", help="keep the source file")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3")

    size = args.size_mib << 20
    workdir = args.dir / "dataset-worker-bench-car"
    workdir.mkdir(parents=True, exist_ok=True)
    source, target = workdir / f"source-{args.size_mib}m.bin", workdir / "out.car"
    make_source(source, size)
    data = memoryview(source.read_bytes())
    try:
        secs = medians(
            {
                "sha256 (file, page cache)": lambda: sha256_file(source),
                "sha256 (bytes in memory)": lambda: sha256_memory(data),
                "CAR write (read+hash+frame+write)": lambda: write_car(source, target, size),
            },
            args.runs,
            after=lambda: target.unlink(missing_ok=True),  # each CAR run writes a new file
        )
    finally:
        target.unlink(missing_ok=True)
        if not args.keep_source:
            source.unlink(missing_ok=True)
    mbps = {name: size / seconds / 1e6 for name, seconds in secs.items()}
    print(f"{args.size_mib} MiB range, median of {args.runs} runs, cpus={os.cpu_count()}")
    for name, value in mbps.items():
        print(f"  {name:<36} {value:8.0f} MB/s")
    car = mbps["CAR write (read+hash+frame+write)"]
    ratio = car / mbps["sha256 (file, page cache)"]
    strict = car / mbps["sha256 (bytes in memory)"]
    verdict = "ok" if ratio >= GOAL else "below goal"
    print(f"  ratio CAR / sha256(file)   {ratio:.2f}  (goal >= {GOAL}: {verdict})")
    print(f"  ratio CAR / sha256(memory) {strict:.2f}")


if __name__ == "__main__":
    main()
