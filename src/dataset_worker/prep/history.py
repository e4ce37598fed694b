"""Packed bytes over time, from the pieces already recorded (for the admin page's chart).

Each data piece (CAR) is recorded with the file ranges its pack job packed, in one transaction,
so the ranges' lengths summed per piece, accumulated in the order the pieces were created, give
the same "bytes packed" total the preparation status reports, as it grew. The reply is bounded:
past `points` pieces, time is cut into `points` equal buckets and each bucket keeps its last
running total.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import Field
from sqlalchemy import func, select

from dataset_worker.db import Database
from dataset_worker.db.models import Car, FileRange, PieceType
from dataset_worker.prep.views import View, as_utc

MAX_POINTS = 500
DEFAULT_POINTS = 200


class PackedPoint(View):
    """Bytes packed by every preparation together, as of one moment."""

    time: datetime = Field(description="When the piece that brought the total here was created.")
    bytes: int = Field(description="Running total of packed bytes (source data, not CAR bytes).")


class PackedHistory(View):
    """The running total of packed bytes over time, oldest first."""

    points: list[PackedPoint] = Field(
        description=f"At most the requested number (at most {MAX_POINTS}); empty before the "
        "first piece."
    )


def packed_history(db: Database, points: int = DEFAULT_POINTS) -> PackedHistory:
    """The running total of packed bytes at each data piece's creation, bucketed to `points`."""
    with db.read() as session:
        rows = session.execute(
            select(Car.created_at, func.sum(FileRange.length))
            .join(FileRange, FileRange.job_id == Car.job_id)
            .where(Car.piece_type == PieceType.DATA)
            .where(FileRange.cid.is_not(None), FileRange.length > 0)
            .group_by(Car.id, Car.created_at)
            .order_by(Car.created_at, Car.id)
        ).all()
    totals = list(_running_totals((as_utc(created), int(size or 0)) for created, size in rows))
    return PackedHistory(
        points=[PackedPoint(time=t, bytes=total) for t, total in bucketed(totals, points)]
    )


def _running_totals(rows: Iterable[tuple[datetime, int]]) -> Iterable[tuple[datetime, int]]:
    total = 0
    for created, size in rows:
        total += size
        yield created, total


def bucketed(totals: list[tuple[datetime, int]], points: int) -> list[tuple[datetime, int]]:
    """At most `points` of the time-ordered running `totals`: the last one of each of `points`
    equal time buckets (so the newest total is always kept)."""
    if len(totals) <= points:
        return totals
    start, end = totals[0][0], totals[-1][0]
    span = (end - start).total_seconds()
    if span <= 0:
        return totals[-1:]
    last_of_bucket: dict[int, tuple[datetime, int]] = {}
    for moment, total in totals:
        bucket = min(points - 1, int((moment - start).total_seconds() / span * points))
        last_of_bucket[bucket] = (moment, total)
    return [last_of_bucket[bucket] for bucket in sorted(last_of_bucket)]
