"""GET /api/config: server settings the web page needs (the content provider's public URL)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

import dataset_worker
from dataset_worker.api.errors import error_responses
from dataset_worker.prep.views import View
from dataset_worker.publicurl import configured_public_url

router = APIRouter(prefix="/api", tags=["server"])


class ConfigView(View):
    """What the page shows from the server's configuration."""

    public_url: str | None = Field(
        description="Base URL of the content provider (`serve --public-url`); pieces are at "
        "<publicUrl>/piece/<pieceCid>. Null when not configured."
    )
    version: str


@router.get(
    "/config",
    response_model=ConfigView,
    responses=error_responses(401),
    summary="Server settings the page uses",
)
async def get_config() -> ConfigView:
    """The content provider's public URL (or null) and the server's version."""
    return ConfigView(public_url=configured_public_url(), version=dataset_worker.__version__)
