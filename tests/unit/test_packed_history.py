"""Bucketing the running total of packed bytes to a bounded number of points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dataset_worker.prep.history import bucketed

START = datetime(2025, 1, 1, tzinfo=UTC)


def totals(seconds: list[float]) -> list[tuple[datetime, int]]:
    """A running total growing by 10 at each of `seconds` after START."""
    return [(START + timedelta(seconds=s), 10 * (i + 1)) for i, s in enumerate(seconds)]


def test_few_points_are_returned_as_they_are() -> None:
    rows = totals([0, 1, 5])
    assert bucketed(rows, 3) == rows
    assert bucketed([], 2) == []


def test_many_points_keep_the_last_of_each_time_bucket() -> None:
    rows = totals([float(s) for s in range(1000)])
    points = bucketed(rows, 10)
    assert len(points) == 10
    assert points[-1] == rows[-1]  # the current total is always there
    assert points[0] == rows[99]  # bucket 0 covers seconds 0 to 99.9
    assert [t for t, _ in points] == sorted(t for t, _ in points)
    assert [v for _, v in points] == sorted(v for _, v in points)


def test_bursts_leave_empty_buckets_out() -> None:
    rows = totals([0, 0.1, 0.2, 100, 100.1, 100.2])
    assert bucketed(rows, 4) == [rows[2], rows[5]]


def test_pieces_all_at_one_moment_give_the_total() -> None:
    rows = [(START, 5), (START, 9), (START, 12)]
    assert bucketed(rows, 2) == [(START, 12)]
