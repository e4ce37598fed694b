"""How a scan cuts files into ranges and ranges into pack jobs (spec §4.2, §4.3).

The numbers are Singularity's, quirks included: the CAR-size estimate starts at the 59-byte
empty header, a 0-byte range counts 37 bytes and an unknown-size range (-1) counts 38 because of
Go's integer division.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from dataset_worker.content.chunker import CHUNK_SIZE
from dataset_worker.sizes import next_power_of_two

EMPTY_CAR_HEADER_SIZE = 59  # len(EmptyCarHeader): a CAR header with a 36-byte CID root
MAX_RANGE_SIZE = 1 << 30
_BLOCK_OVERHEAD = 36 + 3  # CID + a 3-byte varint per leaf
_NODE_LINK_OVERHEAD = 52  # per link of the range's parent node(s)
_NODE_OVERHEAD = 44


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


def _go_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go does."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def to_car_size(length: int) -> int:
    """Singularity's estimate of the CAR bytes one range adds (`toCarSize`)."""
    if length == 0:
        return 37
    blocks = _go_div(length - 1, CHUNK_SIZE) + 1
    size = length + blocks * _BLOCK_OVERHEAD
    if blocks > 1:
        size += blocks * _NODE_LINK_OVERHEAD + _NODE_OVERHEAD
    return size


@dataclass(slots=True)
class JobBatcher:
    """The running CAR-size estimate of the pack job being filled (`FileRangeSet`).

    `count` is the number of ranges it holds. Tiny on purpose: a scan snapshots it before each
    transaction so a retried transaction starts from the same state.
    """

    max_size: int
    estimate: int = EMPTY_CAR_HEADER_SIZE
    count: int = 0

    def fits(self, length: int) -> bool:
        """`AddIfFits`' test: would the range keep the estimate within max size?"""
        return self.estimate + to_car_size(length) <= self.max_size

    def add(self, length: int) -> None:
        """Add a range unconditionally."""
        self.estimate += to_car_size(length)
        self.count += 1

    def reset(self) -> None:
        """Start a new, empty job."""
        self.estimate = EMPTY_CAR_HEADER_SIZE
        self.count = 0

    def copy(self) -> JobBatcher:
        """A snapshot."""
        return JobBatcher(self.max_size, self.estimate, self.count)


def estimate_car_size(lengths: Iterator[int] | list[int]) -> int:
    """The estimate for a whole job: header plus every range (an upper bound in practice)."""
    return EMPTY_CAR_HEADER_SIZE + sum(to_car_size(length) for length in lengths)
