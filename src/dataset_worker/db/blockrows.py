"""How many blocks the database describes for each piece: its `car_blocks` rows plus the ranges
of its pack job packed as one leaf, which keep their place instead of a row
(docs/architecture.md#one-leaf-ranges). Asked by the provider's piece metadata and by `verify`."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from dataset_worker.db.models import Car, CarBlock, FileRange


def block_rows(session: Session, which: ColumnElement[bool]) -> dict[int, int]:
    """Blocks described per car id, for the cars `which` (a condition on `cars`) selects; a car
    with none is left out."""
    counts: dict[int, int] = {}
    rows = session.execute(
        select(CarBlock.car_id, func.count())
        .join(Car, Car.id == CarBlock.car_id)
        .where(which)
        .group_by(CarBlock.car_id)
    )
    for car_id, count in rows:
        counts[car_id] = count
    leaves = session.execute(
        select(Car.id, func.count())
        .join(FileRange, FileRange.job_id == Car.job_id)
        .where(which, FileRange.car_offset.is_not(None))
        .group_by(Car.id)
    )
    for car_id, count in leaves:
        counts[car_id] = counts.get(car_id, 0) + count
    return counts
