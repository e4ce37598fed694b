"""Reading deals: list with filters, one by id or ULID."""

from __future__ import annotations

from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.models import Deal, Preparation
from dataset_worker.deals import states
from dataset_worker.deals.errors import DealNotFound, InvalidDealRequest
from dataset_worker.deals.pieces import PROVIDER_PATTERN, find_preparation
from dataset_worker.deals.ulid import is_ulid
from dataset_worker.deals.views import DealView

MAX_LIST = 10_000


def deal_views(db: Database, deal_ids: list[int]) -> list[DealView]:
    """Views of these deals, in the order given."""
    with db.read() as session:
        rows = session.execute(
            select(Deal, Preparation.name)
            .outerjoin(Preparation, Preparation.id == Deal.preparation_id)
            .where(Deal.id.in_(deal_ids))
        ).all()
    by_id = {deal.id: DealView.from_model(deal, name) for deal, name in rows}
    return [by_id[i] for i in deal_ids if i in by_id]


def list_deals(
    db: Database,
    *,
    preparation: str | None = None,
    provider: str | None = None,
    state: str | None = None,
    limit: int = 1000,
) -> list[DealView]:
    """Deals newest first, filtered by preparation (name or id), provider and state."""
    if state is not None and state not in states.STATES:
        raise InvalidDealRequest(
            f'--state must be one of {", ".join(states.STATES)}, got "{state}"', field="state"
        )
    if not 1 <= limit <= MAX_LIST:
        raise InvalidDealRequest(
            f"limit must be between 1 and {MAX_LIST}, got {limit}", field="limit"
        )
    with db.read() as session:
        query = (
            select(Deal, Preparation.name)
            .outerjoin(Preparation, Preparation.id == Deal.preparation_id)
            .order_by(Deal.id.desc())
            .limit(limit)
        )
        if preparation is not None:
            query = query.where(Deal.preparation_id == find_preparation(session, preparation).id)
        if provider is not None:
            # f01000 and t01000 name the same actor id on their networks.
            text = provider.strip().lower()
            if not PROVIDER_PATTERN.fullmatch(text):
                raise InvalidDealRequest(
                    f'provider must be an actor id such as f01000, got "{provider}"',
                    field="provider",
                )
            query = query.where(Deal.provider.in_({text, "f" + text[1:], "t" + text[1:]}))
        if state is not None:
            query = query.where(Deal.state == state)
        return [DealView.from_model(deal, name) for deal, name in session.execute(query).all()]


def get_deal(db: Database, key: str) -> DealView:
    """One deal by numeric id or ULID, with the body that was sent."""
    text = key.strip()
    with db.read() as session:
        query = select(Deal, Preparation.name).outerjoin(
            Preparation, Preparation.id == Deal.preparation_id
        )
        if text.isascii() and text.isdigit() and int(text) < 2**63:
            query = query.where(Deal.id == int(text))
        elif is_ulid(text.upper()):
            query = query.where(Deal.ulid == text.upper())
        else:
            raise InvalidDealRequest(
                f'a deal is named by its id or its ULID, got "{key}"', field="id"
            )
        row = session.execute(query).one_or_none()
    if row is None:
        raise DealNotFound(f'deal "{key}" not found')
    deal, name = row
    return DealView.from_model(deal, name, with_proposal=True)
