"""A worker printing 1 GiB: every byte goes through, the server's memory stays flat, and `tail`
answers the last lines all along. How fast `tail` answers meanwhile is bench/logs_tail.py's.

The child is a trivial Python flood standing in for the worker (the real worker cannot be made to
print a gigabyte on purpose); the output path (pipe → log pump → rotating files → ring buffer) is
the real one.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from dataset_worker.manager.launchconfig import WorkerLaunchConfig
from dataset_worker.manager.launcher import LogLimits
from dataset_worker.manager.manager import WorkerManager
from dataset_worker.manager.procinfo import is_alive
from dataset_worker.manager.segments import list_segments

GIB = 1 << 30
FLOOD = f"""
import sys
line = b"x" * 1023 + b"\\n"
block = line * 1024
out = sys.stdout.buffer
for _ in range({GIB} // len(block)):
    out.write(block)
out.flush()
"""


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_gib_of_output_keeps_memory_flat_and_tail_working(tmp_path: Path) -> None:
    manager = WorkerManager(
        tmp_path / "state",
        lambda config: [sys.executable, "-c", FLOOD],
        log_limits=LogLimits(segment_bytes=8 << 20, segments_kept=4),
    )
    baseline = rss_bytes()
    started = manager.start(WorkerLaunchConfig())
    tails = 0
    peak = baseline
    try:
        while manager.status().running:
            logs = manager.logs(tail=100)
            tails += 1
            assert logs.chunks["stdout"].data.count(b"\n") <= 100
            peak = max(peak, rss_bytes())
            time.sleep(0.05)  # a polling client's pace, not a wait
    finally:
        if manager.status().running:
            os.killpg(started.pid, signal.SIGKILL)
    record = manager.current_record()
    assert record is not None and record.exit_code == 0 and not is_alive(record.identity)
    final = manager.logs(streams=("stdout",))
    assert final.chunks["stdout"].end == GIB  # every byte went through
    assert len(final.chunks["stdout"].data) == 1 << 20  # the ring buffer holds 1 MiB
    on_disk = sum(s.path.stat().st_size for s in list_segments(manager.paths.logs, "stdout"))
    assert on_disk <= 4 * (8 << 20) + (1 << 20)
    assert tails >= 5
    assert peak - baseline < 20 << 20, f"RSS grew by {(peak - baseline) >> 20} MiB"
