"""How a scan cuts files into ranges and ranges into pack jobs (docs/formats.md#cutting-files-into-ranges).

The numbers are Singularity's, quirks included: the CAR-size estimate starts at the 59-byte
empty header, a 0-byte range counts 37 bytes and an unknown-size range (-1) counts 38 because of
Go's integer division.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dataset_worker.content.chunker import CHUNK_SIZE
from dataset_worker.sizes import next_power_of_two
from dataset_worker.worker.jobs.carsize import (
    EMPTY_CAR_HEADER_SIZE,
    LEAF_RANGE_CAR_OVERHEAD,
    to_car_size,
)

MAX_RANGE_SIZE = 1 << 30


def range_split_size(max_size: int) -> int:
    """`min(NextPowerOfTwo(maxSize) / 4, 1 GiB)`: the length of every range but a file's last."""
    size = min(next_power_of_two(max_size) // 4, MAX_RANGE_SIZE)
    if size < 1:
        raise ValueError(f"max size {max_size} is too small to cut files into ranges")
    return size


def split_file(size: int, split_size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) ranges of a file: one (0, 0) for an empty file, one (0, -1) for an
    unknown size, else `split_size` pieces with a shorter last one."""
    if size <= 0:
        yield 0, size if size == -1 else 0
        return
    for offset in range(0, size, split_size):
        yield offset, min(split_size, size - offset)


@dataclass(slots=True)
class JobBatcher:
    """The running CAR-size estimate of the pack job being filled (`FileRangeSet`).

    `count` is the number of ranges it holds. Tiny on purpose: a scan snapshots it before each
    transaction so a retried transaction starts from the same state.
    """

    max_size: int
    estimate: int = EMPTY_CAR_HEADER_SIZE
    count: int = 0

    def starts(self, lengths: Iterable[int]) -> list[int]:
        """Add ranges of these lengths in turn; the indexes of those that start a new job.

        Each is `AddIfFits`: a range that would take a non-empty job past max size closes it
        and goes first into the next. The loop runs once per range of a scan (a million for a
        million tiny files), so a one-leaf range's estimate is worked out inline.
        """
        max_size, estimate, count = self.max_size, self.estimate, self.count
        starts: list[int] = []
        for index, length in enumerate(lengths):
            size = (
                length + LEAF_RANGE_CAR_OVERHEAD
                if 0 < length <= CHUNK_SIZE
                else to_car_size(length)
            )
            if estimate + size > max_size and count > 0:
                starts.append(index)
                estimate, count = EMPTY_CAR_HEADER_SIZE, 0
            estimate += size
            count += 1
        self.estimate, self.count = estimate, count
        return starts

    def reset(self) -> None:
        """Start a new, empty job."""
        self.estimate = EMPTY_CAR_HEADER_SIZE
        self.count = 0

    def copy(self) -> JobBatcher:
        """A snapshot."""
        return JobBatcher(self.max_size, self.estimate, self.count)
