"""/api/packed-history: packed bytes over time, so the admin page's chart has data on load.

Not under /api/preparations/: that path's next segment is a preparation name, and
"packed-history" is a valid one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from dataset_worker.api.errors import error_responses
from dataset_worker.api.services import Services, services
from dataset_worker.prep.history import DEFAULT_POINTS, MAX_POINTS, PackedHistory, packed_history

router = APIRouter(prefix="/api", tags=["preparations"])


@router.get(
    "/packed-history",
    response_model=PackedHistory,
    responses=error_responses(400, 401),
    summary="Packed bytes over time",
)
def history(
    app: Annotated[Services, Depends(services)],
    points: Annotated[
        int,
        Query(
            ge=2,
            le=MAX_POINTS,
            description="Most points to return; older pieces are merged into time buckets.",
        ),
    ] = DEFAULT_POINTS,
) -> PackedHistory:
    """The running total of bytes packed by every preparation, at each data piece's creation."""
    return packed_history(app.db, points)
