"""Benchmark: commP throughput against hashlib.sha256 over the same bytes, in the same run.

Prints MB/s (10^6 bytes per second) and ratios, each the median of several runs; hashlib and
commP runs alternate so a load change on the machine hits both. commP hashes about four SHA-256
blocks per 64 input bytes where plain sha256 hashes one, so a ratio near 0.25-0.31 is the
hashing bound (the SHA-NI backend gets past it by precomputing the constant padding block).

Usage: .venv/bin/python bench/commp.py [--size-mib 256] [--runs 5] [--backend sha-ni|openssl]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import threading
import time
from collections.abc import Callable

from dataset_worker.content.commp import CommP, backend

CHUNK = 4 << 20  # fed as the CLI and the packer feed it


def sha256_all(data: memoryview) -> None:
    h = hashlib.sha256()
    for start in range(0, len(data), CHUNK):
        h.update(data[start : start + CHUNK])
    h.digest()


def commp_all(data: memoryview, name: str | None) -> None:
    calc = CommP(name)
    for start in range(0, len(data), CHUNK):
        calc.update(data[start : start + CHUNK])
    calc.digest()


def in_threads(work: Callable[[], None], threads: int) -> Callable[[], None]:
    """Run `work` once in each of `threads` threads at the same time."""

    def run() -> None:
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()

    return run


def medians(cases: dict[str, Callable[[], None]], runs: int) -> dict[str, float]:
    """Median seconds per case, the cases interleaved run by run."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            start = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256, help="bytes hashed per run (MiB)")
    parser.add_argument("--runs", type=int, default=5, help="runs per case (median is shown)")
    parser.add_argument("--backend", default=None, help="commP backend (default: the fastest)")
    args = parser.parse_args()

    size = args.size_mib << 20
    data = memoryview(os.urandom(size))
    name = args.backend or backend()
    cases = {
        "sha256-1": lambda: sha256_all(data),
        "commp-1": lambda: commp_all(data, name),
        "sha256-2": in_threads(lambda: sha256_all(data), 2),
        "commp-2": in_threads(lambda: commp_all(data, name), 2),
    }
    secs = medians(cases, args.runs)
    mbps = {case: size * (2 if case.endswith("-2") else 1) / secs[case] / 1e6 for case in secs}

    print(f"commP backend: {name}; {args.size_mib} MiB of random data in memory, fed in 4 MiB")
    print(f"updates; median of {args.runs} runs")
    print(f"hashlib.sha256  1 thread : {mbps['sha256-1']:7.0f} MB/s")
    print(
        f"commP           1 thread : {mbps['commp-1']:7.0f} MB/s   "
        f"ratio {mbps['commp-1'] / mbps['sha256-1']:.2f} (goal >= 0.25; hashing bound ~0.31)"
    )
    print(f"hashlib.sha256  2 threads: {mbps['sha256-2']:7.0f} MB/s aggregate")
    print(
        f"commP           2 threads: {mbps['commp-2']:7.0f} MB/s aggregate   "
        f"ratio {mbps['commp-2'] / mbps['sha256-1']:.2f} to 1-thread sha256, "
        f"{mbps['commp-2'] / mbps['sha256-2']:.2f} to 2-thread sha256; "
        f"scaling x{mbps['commp-2'] / mbps['commp-1']:.2f}"
    )


if __name__ == "__main__":
    main()
