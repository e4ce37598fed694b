"""Benchmark: `tail` of the worker's logs while the worker floods its output (1 GiB).

The speed half of tests/unit/test_manager_flood.py (which keeps the correctness: every byte goes
through, memory stays flat). A trivial Python flood stands in for the worker; the output path
(pipe → log pump → rotating segment files → ring buffer) is the real one. The latency of
`WorkerManager.logs(tail=100)` is sampled while the flood runs, then again once it has ended (the
same files, nobody writing: the baseline of this run). Prints p50, p99 and max of both and the
ratio flood / baseline. Goal: max under flood < 100 ms.

Usage: PYTHONPATH=. .venv/bin/python bench/logs_tail.py [--mib 1024] [--baseline-samples 200]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dataset_worker.manager.launchconfig import WorkerLaunchConfig
from dataset_worker.manager.launcher import LogLimits
from dataset_worker.manager.manager import WorkerManager

GOAL_SECONDS = 0.1


def flood(mib: int) -> str:
    """A child that writes `mib` MiB of 1 KiB lines to stdout."""
    return f"""
import sys
line = b"x" * 1023 + b"\\n"
block = line * 1024
out = sys.stdout.buffer
for _ in range({mib}):
    out.write(block)
out.flush()
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def sample(manager: WorkerManager) -> float:
    began = time.perf_counter()
    manager.logs(tail=100)
    return time.perf_counter() - began


def describe(name: str, latencies: list[float]) -> str:
    return (
        f"{name:<10} n={len(latencies):<5} p50 {statistics.median(latencies) * 1000:7.2f} ms  "
        f"p99 {percentile(latencies, 0.99) * 1000:7.2f} ms  max {max(latencies) * 1000:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="output the stand-in worker writes")
    parser.add_argument("--baseline-samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dw-bench-logs-") as folder:
        manager = WorkerManager(
            Path(folder) / "state",
            lambda config: [sys.executable, "-c", flood(args.mib)],
            log_limits=LogLimits(segment_bytes=8 << 20, segments_kept=4),
        )
        started = manager.start(WorkerLaunchConfig())
        during: list[float] = []
        try:
            while manager.status().running:
                during.append(sample(manager))
                time.sleep(0.05)  # a polling client's pace, not a wait
        finally:
            if manager.status().running:
                os.killpg(started.pid, signal.SIGKILL)
        idle = [sample(manager) for _ in range(args.baseline_samples)]
    print(describe("flood", during))
    print(describe("baseline", idle))
    ratio = statistics.median(during) / statistics.median(idle)
    verdict = "meets" if max(during) < GOAL_SECONDS else "MISSES"
    print(f"flood / baseline (p50): {ratio:.2f}; max under flood {verdict} the 100 ms goal")


if __name__ == "__main__":
    main()
