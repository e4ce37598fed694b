"""Singularity's estimate of a piece's CAR size, used by the scan to fill pack jobs and by pack
to pick an output with room.

The numbers are Singularity's, quirks included: the estimate starts at the 59-byte empty header,
a 0-byte range counts 37 bytes and an unknown-size range (-1) counts 38 because of Go's integer
division.
"""

from __future__ import annotations

from dataset_worker.content.chunker import CHUNK_SIZE

EMPTY_CAR_HEADER_SIZE = 59  # len(EmptyCarHeader): a CAR header with a 36-byte CID root
_BLOCK_OVERHEAD = 36 + 3  # CID + a 3-byte varint per leaf
_NODE_LINK_OVERHEAD = 52  # per link of the range's parent node(s)
_NODE_OVERHEAD = 44


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


# The estimate of a range of 1 to CHUNK_SIZE bytes (one leaf) is its length plus this, and of an
# empty range EMPTY_RANGE_CAR_SIZE; the unknown size -1 is a one-leaf range too (-1 + 39 = 38).
# Pack sums these in SQL (worker/jobs/pack/job.py job_size).
LEAF_RANGE_CAR_OVERHEAD = to_car_size(1) - 1
EMPTY_RANGE_CAR_SIZE = to_car_size(0)
