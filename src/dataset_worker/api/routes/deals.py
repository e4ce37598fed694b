"""/api/deals and /api/schedules: storage deals and deal schedules (docs/deals.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from dataset_worker.api.errors import error_responses
from dataset_worker.api.services import Services, services
from dataset_worker.deals.queries import MAX_LIST, get_deal, list_deals
from dataset_worker.deals.schedules import (
    ACTIVE,
    PAUSED,
    CreateScheduleRequest,
    create_schedule,
    delete_schedule,
    get_schedule,
    list_schedules,
    set_schedule_state,
)
from dataset_worker.deals.views import DealView, ScheduleView

router = APIRouter(tags=["deals"])

AppServices = Annotated[Services, Depends(services)]
DealKey = Annotated[str, Path(min_length=1, max_length=26, description="Deal id or ULID.")]
ScheduleId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Schedule id.")]


@router.get("/api/deals", response_model=list[DealView], responses=error_responses(400, 401, 404))
def deals(
    app: AppServices,
    prep: Annotated[
        str | None, Query(max_length=255, description="Preparation name or id.")
    ] = None,
    provider: Annotated[str | None, Query(max_length=63, description="Provider id.")] = None,
    state: Annotated[str | None, Query(max_length=15, description="Deal state.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST, description="Newest deals at most.")] = 1000,
) -> list[DealView]:
    """Deals, newest first, filtered by preparation, provider and state."""
    return list_deals(app.db, preparation=prep, provider=provider, state=state, limit=limit)


@router.get("/api/deals/{deal}", response_model=DealView, responses=error_responses(400, 401, 404))
def deal(app: AppServices, deal: DealKey) -> DealView:
    """One deal, with the mk20 body that was sent."""
    return get_deal(app.db, deal)


@router.get("/api/schedules", response_model=list[ScheduleView], responses=error_responses(401))
def schedules(app: AppServices) -> list[ScheduleView]:
    """Every deal schedule with the deals it has made."""
    return list_schedules(app.db)


@router.post(
    "/api/schedules",
    status_code=201,
    response_model=ScheduleView,
    responses=error_responses(400, 401, 404),
)
def create(app: AppServices, request: CreateScheduleRequest) -> ScheduleView:
    """Create a schedule; the worker's deal loop makes its deals."""
    return create_schedule(app.db, request)


@router.get(
    "/api/schedules/{schedule}",
    response_model=ScheduleView,
    responses=error_responses(400, 401, 404),
)
def show(app: AppServices, schedule: ScheduleId) -> ScheduleView:
    """One schedule."""
    return get_schedule(app.db, schedule)


@router.post(
    "/api/schedules/{schedule}/pause",
    response_model=ScheduleView,
    responses=error_responses(400, 401, 404),
)
def pause(app: AppServices, schedule: ScheduleId) -> ScheduleView:
    """Stop claiming new deals (claimed ones are still sent and polled)."""
    return set_schedule_state(app.db, schedule, PAUSED)


@router.post(
    "/api/schedules/{schedule}/resume",
    response_model=ScheduleView,
    responses=error_responses(400, 401, 404),
)
def resume(app: AppServices, schedule: ScheduleId) -> ScheduleView:
    """Claim deals again."""
    return set_schedule_state(app.db, schedule, ACTIVE)


@router.delete(
    "/api/schedules/{schedule}",
    response_model=ScheduleView,
    responses=error_responses(400, 401, 404),
)
def delete(app: AppServices, schedule: ScheduleId) -> ScheduleView:
    """Delete a schedule; its deals stay."""
    return delete_schedule(app.db, schedule)
