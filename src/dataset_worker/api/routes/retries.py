"""POST /api/preparations/{name}/retry: make failed jobs ready again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path
from pydantic import ConfigDict, Field

from dataset_worker.api.errors import error_responses
from dataset_worker.api.services import Services, services
from dataset_worker.db.models import JobType
from dataset_worker.prep import JobView, retry_jobs
from dataset_worker.prep.lookup import MAX_KEY_LENGTH
from dataset_worker.prep.views import View

router = APIRouter(prefix="/api/preparations", tags=["preparations"])


class RetryRequest(View):
    """Which failed jobs to retry (default: every type)."""

    model_config = ConfigDict(extra="forbid")

    type: JobType | None = Field(default=None, description="Only jobs of this type.")


@router.post(
    "/{name}/retry",
    response_model=list[JobView],
    responses=error_responses(400, 401, 404),
    summary="Retry failed jobs",
)
def retry(
    app: Annotated[Services, Depends(services)],
    name: Annotated[
        str, Path(min_length=1, max_length=MAX_KEY_LENGTH, description="Preparation name or id.")
    ],
    request: Annotated[RetryRequest | None, Body()] = None,
) -> list[JobView]:
    """Move the preparation's jobs in `error` back to `ready` (attempts reset to 0, no
    backoff); the reply lists the jobs changed, lowest id first (empty: none had failed)."""
    views = retry_jobs(app.db, name, request.type if request is not None else None)
    if views:
        app.wake_workers()
    return views
