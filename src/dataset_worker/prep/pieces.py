"""The pieces (CAR files) a preparation has produced so far."""

from __future__ import annotations

from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.models import Car
from dataset_worker.prep.lookup import find_preparation
from dataset_worker.prep.views import PieceView


def list_pieces(db: Database, prep: str | int) -> list[PieceView]:
    """Every piece of `prep`, data and DAG, oldest first."""
    with db.read() as session:
        preparation = find_preparation(session, prep)
        cars = session.scalars(
            select(Car).where(Car.preparation_id == preparation.id).order_by(Car.id)
        )
        return [PieceView.from_model(car) for car in cars]
