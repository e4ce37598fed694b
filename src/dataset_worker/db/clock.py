"""The time every worker agrees on: the database's clock as SQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.types import DateTime

from dataset_worker.db import Database
from dataset_worker.db.models import utcnow


def now_expr(db: Database, *, minus: float = 0.0) -> ColumnElement[datetime]:
    """The current time, minus `minus` seconds, as SQL.

    PostgreSQL uses the server clock, so workers on hosts with skewed clocks still agree on who is
    stale and when a retry is due; SQLite is only shared by processes of one host, which share
    its clock.
    """
    return shifted_now(db, -minus)


def shifted_now(db: Database, seconds: float) -> ColumnElement[datetime]:
    """The current time plus `seconds` (negative: minus), as SQL.

    On SQLite the sum is made here: a datetime is stored as text there, and SQL arithmetic on it
    would store a number.
    """
    if db.is_sqlite:
        return literal(utcnow() + timedelta(seconds=seconds), DateTime(timezone=True))
    if seconds:
        return func.now() + timedelta(seconds=seconds)
    return func.now()


def database_now(db: Database, session: Session) -> datetime:
    """The current time as `now_expr` sees it, as an aware UTC datetime."""
    if db.is_sqlite:
        return utcnow()  # SQLite has no clock of its own worth asking: the host's
    value = session.scalar(select(func.now()))
    assert isinstance(value, datetime)
    return value
