"""The scan's memory does not grow with the number of pack jobs it plans.

A tiny max size (100 bytes) cuts one file into a range and a pack job per 32 bytes. The scan
runs in a subprocess (tests/support/scan_rss.py), once over a 640 KB file (20,000 jobs) and once
over a 2.56 MB file (80,000 jobs); its peak RSS growth may differ by far less than the ~150 bytes
per job that holding the ranges and jobs of a batch in memory costs (9 MB here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.jobs import pseudo_random_bytes

MAX_SIZE = 100
SMALL, LARGE = 20_000 * 32, 80_000 * 32
ALLOWED_EXTRA = 4 << 20


def _scan(database_url: str, folder: Path, name: str) -> dict[str, int]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.scan_rss",
            database_url,
            str(folder),
            str(MAX_SIZE),
            name,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_scan_memory_stays_flat_however_many_pack_jobs(database_url: str, tmp_path: Path) -> None:
    runs = {}
    for name, size in (("small", SMALL), ("large", LARGE)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "one.bin").write_bytes(pseudo_random_bytes(size))
        runs[name] = _scan(database_url, folder, f"rss-{name}-{tmp_path.name}")
    assert runs["small"]["jobs"] == SMALL // 32 and runs["large"]["jobs"] == LARGE // 32
    extra = runs["large"]["growth"] - runs["small"]["growth"]
    assert extra < ALLOWED_EXTRA, runs
