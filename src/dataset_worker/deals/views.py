"""What the deal use-cases return: pydantic models with camelCase JSON (CLI --json and the API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from dataset_worker.db.models import Deal, DealSchedule


class DealsView(BaseModel):
    """Base: camelCase aliases, also constructible by field name."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DealView(DealsView):
    """One deal: the piece, the provider, where it stands and the SP's last word."""

    id: int
    ulid: str = Field(description="The mk20 deal identifier sent to the SP.")
    preparation_id: int | None
    preparation: str | None
    schedule_id: int | None
    piece_cid: str = Field(description="PieceCID v1.")
    piece_cid_v2: str = Field(description="PieceCID v2, as sent to the SP.")
    piece_size: int
    payload_size: int
    provider: str
    sp_url: str
    client: str
    product: str
    state: str = Field(description="proposing, accepted, complete, failed or rejected.")
    sp_state: str | None = Field(description="The SP's own deal state, from its status route.")
    attempts: int
    last_status: int | None = Field(description="The SP's last HTTP status.")
    last_reason: str | None = Field(description="The SP's reason (a rejection), or our error.")
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    accepted_at: datetime | None
    proposal: dict[str, Any] | None = Field(
        default=None, description="The mk20.Deal body sent (deal show only)."
    )

    @classmethod
    def from_model(
        cls, deal: Deal, prep_name: str | None, *, with_proposal: bool = False
    ) -> DealView:
        """The view of a row."""
        return cls(
            id=deal.id,
            ulid=deal.ulid,
            preparation_id=deal.preparation_id,
            preparation=prep_name,
            schedule_id=deal.schedule_id,
            piece_cid=deal.piece_cid,
            piece_cid_v2=deal.piece_cid_v2,
            piece_size=deal.piece_size,
            payload_size=deal.payload_size,
            provider=deal.provider,
            sp_url=deal.sp_url,
            client=deal.client,
            product=deal.product,
            state=deal.state,
            sp_state=deal.sp_state,
            attempts=deal.attempts,
            last_status=deal.last_status,
            last_reason=deal.last_reason,
            next_attempt_at=_utc(deal.next_attempt_at),
            created_at=_utc(deal.created_at) or deal.created_at,
            updated_at=_utc(deal.updated_at) or deal.updated_at,
            accepted_at=_utc(deal.accepted_at),
            proposal=deal.proposal if with_proposal else None,
        )


class ProviderTarget(DealsView):
    """One provider of a schedule: its actor id and Market 2.0 base URL."""

    provider: str
    sp_url: str


class ScheduleView(DealsView):
    """A deal schedule with the deals it has made so far."""

    id: int
    preparation_id: int
    preparation: str
    client: str
    providers: list[ProviderTarget]
    replicas: int
    per_day: int | None
    total: int | None
    product: str
    duration: int
    start_epoch_offset: int | None
    url_template: str
    state: str = Field(description="active or paused.")
    deals_made: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, schedule: DealSchedule, prep_name: str, deals_made: int) -> ScheduleView:
        """The view of a row."""
        return cls(
            id=schedule.id,
            preparation_id=schedule.preparation_id,
            preparation=prep_name,
            client=schedule.client,
            providers=[ProviderTarget.model_validate(p) for p in schedule.providers],
            replicas=schedule.replicas,
            per_day=schedule.per_day,
            total=schedule.total,
            product=schedule.product,
            duration=schedule.duration,
            start_epoch_offset=schedule.start_epoch_offset,
            url_template=schedule.url_template,
            state=schedule.state,
            deals_made=deals_made,
            created_at=_utc(schedule.created_at) or schedule.created_at,
            updated_at=_utc(schedule.updated_at) or schedule.updated_at,
        )
