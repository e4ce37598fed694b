"""Segmented commP: segments hashed apart and joined give the commitment of one CommP."""

from __future__ import annotations

import os

import pytest

from dataset_worker.content.commp import CommP, CommPError, commp_of
from dataset_worker.content.commptree import (
    SEGMENT,
    check_segment,
    join_segments,
    segment_count,
    segment_result,
)

# (whole segments, extra bytes): one segment (at the commP minimum, whole); whole segments (2, 3,
# a power of two, one more); a last segment shorter than the commP minimum (65 bytes), just at
# it, a whole Fr32 block long; one byte short of whole segments.
SIZES = [
    (0, 65), (1, 0), (2, 0), (3, 0), (8, 0), (9, 0), (2, 1), (2, 64), (2, 65), (3, 127),
    (5, -1), (17, 3),
]  # fmt: skip


def segmented(data: bytes, segment: int) -> bytes:
    """The commitment of `data` hashed one segment at a time."""
    results = []
    for index in range(segment_count(len(data), segment)):
        calc = CommP()
        calc.update(data[index * segment : (index + 1) * segment])
        results.append(segment_result(calc))
    return join_segments(results, segment)


@pytest.mark.parametrize("segment", [127, 127 * 4, 127 * 64])
@pytest.mark.parametrize(("segments", "extra"), SIZES)
def test_segments_joined_match_one_commp(segment: int, segments: int, extra: int) -> None:
    data = os.urandom(segments * segment + extra)
    assert segmented(data, segment) == commp_of(data).commitment


def test_a_real_segment_size_over_two_segments_and_a_short_tail() -> None:
    data = os.urandom(2 * SEGMENT + 100)
    assert segment_count(len(data)) == 3
    assert segmented(data, SEGMENT) == commp_of(data).commitment


@pytest.mark.parametrize("segment", [0, 126, 127 * 3, 128, -127])
def test_a_segment_that_is_not_an_aligned_subtree_is_refused(segment: int) -> None:
    with pytest.raises(
        CommPError, match=rf"segment must be 127 times a power of two bytes, got {segment}"
    ):
        check_segment(segment)
