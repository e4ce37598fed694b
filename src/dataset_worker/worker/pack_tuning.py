"""How a worker process tunes its pack jobs to the machine: chunk read-ahead on or off.

A pack job's read-ahead thread reads and hashes the next chunks while the job thread writes the
CAR and computes commP: one job then keeps ~1.4 cores busy. When the process runs as many pack
jobs at once as it has cores, that extra thread only adds contention (measured on 2 cores:
2 jobs gave 546 MB/s in all without read-ahead, 504-587 MB/s with it). So read-ahead stays on
only while the pack jobs leave a core idle.
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API on this platform
        return max(1, os.cpu_count() or 1)


def choose_read_ahead(pack_concurrency: int, cpus: int | None = None) -> bool:
    """Read ahead when fewer pack jobs may run at once than there are usable CPUs.

    `cpus` defaults to `usable_cpus()`.
    """
    available = usable_cpus() if cpus is None else cpus
    return pack_concurrency < available
