"""How many pack jobs a small max size makes: the warning of `prep create --max-size` < 1 MiB.

Every pack job makes one CAR file (and one piece), so a max size of a few KiB over a big
folder makes millions of them. The estimate follows the scan's rules (docs/formats.md#cutting-files-into-ranges)
closely enough for a warning: files are cut into ranges of next_power_of_two(maxSize) / 4
bytes, each range costs its bytes plus about `RANGE_OVERHEAD` in the CAR, and a job holds what
fits under maxSize after the CAR header.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dataset_worker.sizes import format_size, next_power_of_two

SMALL_MAX_SIZE = 1 << 20  # below this, prep create warns
CAR_HEADER = 59
RANGE_OVERHEAD = 40  # varint + CID of a raw leaf, about
MAX_FILES = 1_000_000  # stop counting here: the warning says "at least"


@dataclass(frozen=True)
class JobEstimate:
    """Files and bytes seen, and about how many pack jobs they make."""

    files: int
    bytes: int
    jobs: int
    complete: bool  # False when the walk stopped at MAX_FILES


def estimate_pack_jobs(folder: Path, max_size: int) -> JobEstimate:
    """Walk a local folder (symbolic links not followed) and estimate its pack jobs."""
    split = max(next_power_of_two(max_size) // 4, 1)
    room = max(max_size - CAR_HEADER, 1)
    per_job = max(room // (split + RANGE_OVERHEAD), 1)  # full ranges a job holds
    files = total = full_ranges = tail_bytes = 0
    complete = True
    for root, _dirs, names in os.walk(folder):
        for name in names:
            try:
                size = os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
            files += 1
            total += size
            full_ranges += size // split
            tail_bytes += size % split + RANGE_OVERHEAD
            if files >= MAX_FILES:
                complete = False
                break
        if not complete:
            break
    jobs = -(-full_ranges // per_job) + -(-tail_bytes // room)
    return JobEstimate(files, total, jobs, complete)


def small_max_size_warning(source: str, max_size: int) -> str | None:
    """The warning for a max size below 1 MiB over a local folder (None otherwise)."""
    folder = Path(source)
    if max_size >= SMALL_MAX_SIZE or not folder.is_dir():
        return None
    found = estimate_pack_jobs(folder, max_size)
    about = "about" if found.complete else "at least"
    return (
        f"maxSize {format_size(max_size)} is below 1 MiB: this source ({found.files} files, "
        f"{format_size(found.bytes)}) will make {about} {found.jobs:,} pack jobs, each its own "
        "CAR file and piece"
    )
