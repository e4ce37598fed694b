"""The `deals` rows: claims that never duplicate, send leases, recorded outcomes.

A deal row is claimed before anything is sent: INSERT … ON CONFLICT DO NOTHING on the unique
(piece_cid, provider) pair, so two processes (or a restart) can never make two deals of one
piece with one provider. Sending takes a lease on the row first (a conditional UPDATE of
`next_attempt_at`), so only one process sends a given deal at a time; a process killed while it
sends leaves a lease that simply runs out, and the next process re-sends the same ULID.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import Deal, utcnow
from dataset_worker.deals import states
from dataset_worker.deals.pieces import PieceRef

DEALS = cast(Table, Deal.__table__)  # Core statements for the per-send writes


@dataclass(frozen=True)
class Leased:
    """What a sender needs of a leased deal row."""

    id: int
    ulid: str
    sp_url: str
    client: str
    state: str
    proposal: dict[str, Any]
    attempts: int


def insert_claim(session: Session, is_sqlite: bool, row: dict[str, Any]) -> int | None:
    """Insert one deal row unless its (piece, provider) pair exists; the new id or None."""
    dialect_insert = sqlite.insert if is_sqlite else postgresql.insert
    statement = (
        dialect_insert(Deal)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["piece_cid", "provider"])
        .returning(Deal.id)
    )
    return session.execute(statement).scalar_one_or_none()


def claim_row(
    *,
    ulid: str,
    piece: PieceRef,
    provider: str,
    sp_url: str,
    client: str,
    product: str,
    proposal: dict[str, Any],
    preparation_id: int | None,
    schedule_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The column values of a newly claimed deal (due to be sent at once)."""
    return {
        "ulid": ulid,
        "preparation_id": preparation_id,
        "car_id": piece.car_id,
        "schedule_id": schedule_id,
        "piece_cid": piece.piece_cid,
        "piece_cid_v2": piece.piece_cid_v2,
        "piece_size": piece.piece_size,
        "payload_size": piece.payload_size,
        "provider": provider,
        "sp_url": sp_url,
        "client": client,
        "product": product,
        "state": states.PROPOSING,
        "proposal": proposal,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def take_lease(db: Database, deal_id: int, lease_seconds: float) -> Leased | None:
    """Lease a due deal (proposing or accepted) for `lease_seconds`; None when another process
    holds it or it is not due."""

    def write(session: Session) -> Leased | None:
        now = utcnow()
        # One statement, on the Core connection (no ORM bookkeeping): this runs for every send.
        row = (
            session.connection()
            .execute(
                update(DEALS)
                .where(
                    DEALS.c.id == deal_id,
                    DEALS.c.state.in_((states.PROPOSING, states.ACCEPTED)),
                    or_(
                        DEALS.c.next_attempt_at.is_(None),
                        DEALS.c.next_attempt_at <= now,
                    ),
                )
                .values(next_attempt_at=now + timedelta(seconds=lease_seconds))
                .returning(
                    DEALS.c.id,
                    DEALS.c.ulid,
                    DEALS.c.sp_url,
                    DEALS.c.client,
                    DEALS.c.state,
                    DEALS.c.proposal,
                    DEALS.c.attempts,
                )
            )
            .one_or_none()
        )
        return None if row is None else Leased(*row)

    return db.run_write(write)


def due_deal_ids(db: Database, limit: int, *, schedule_id: int | None = None) -> list[int]:
    """Deals whose next send or poll is due, oldest first."""
    with db.read() as session:
        query = (
            select(Deal.id)
            .where(
                Deal.state.in_((states.PROPOSING, states.ACCEPTED)),
                or_(Deal.next_attempt_at.is_(None), Deal.next_attempt_at <= utcnow()),
            )
            .order_by(Deal.next_attempt_at, Deal.id)
            .limit(limit)
        )
        if schedule_id is not None:
            query = query.where(Deal.schedule_id == schedule_id)
        return list(session.scalars(query))


def record(db: Database, deal_id: int, **values: Any) -> None:
    """Write an outcome on a deal row."""

    def write(session: Session) -> None:
        session.connection().execute(
            update(DEALS).where(DEALS.c.id == deal_id).values(updated_at=utcnow(), **values)
        )

    db.run_write(write)
