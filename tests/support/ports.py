"""Free loopback ports for the servers tests start, outside the kernel's ephemeral range.

A port the kernel hands out for `bind(0)` comes from the same range as the source ports of every
outgoing connection on the machine: between picking such a port and the server binding it, a
client connection of another test (the suite makes thousands) can take it, and the server then
exits with "already in use". Ports below the ephemeral range are only ever taken by an explicit
bind, so each test process takes its ports from its own slice below that range (xdist workers
never share one) and walks through the slice in turn, so a port it handed out is not handed out
again until the slice wraps.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from pathlib import Path

FIRST = 20_000
SLICE = 1_000  # ports per test process
SLICES = 12  # 20,000-31,999: below Linux's default ephemeral range (32,768-60,999)


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw3": the fourth xdist worker
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    start = FIRST + (index % SLICES) * SLICE
    end = min(start + SLICE, _ephemeral_start())
    if end <= start:
        raise RuntimeError(f"no test ports below the ephemeral range for worker {worker}")
    return range(start, end)


_PORTS: Iterator[int] = itertools.cycle(_slice())


def free_port() -> int:
    """A loopback TCP port that nothing listens on now and that no client connection takes."""
    for _ in range(SLICE):
        port = next(_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or in TIME_WAIT from an earlier test
            return port
    raise RuntimeError("no free test port in this process's slice")
