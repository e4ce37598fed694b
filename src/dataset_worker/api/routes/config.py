"""GET /api/config: server settings the web page needs (the content provider's public URL)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

import dataset_worker
from dataset_worker.api.errors import error_responses
from dataset_worker.prep.views import View
from dataset_worker.publicurl import configured_piece_cid_version, configured_public_url

router = APIRouter(prefix="/api", tags=["server"])


class ConfigView(View):
    """What the page shows from the server's configuration."""

    public_url: str | None = Field(
        description="Base URL of the content provider (`serve --public-url`); pieces are at "
        "<publicUrl>/piece/<pieceCid>. Null when not configured."
    )
    piece_cid_version: int = Field(
        description="The piece CID version piece links use (`serve --piece-cid-version`): 1, "
        "or 2 for the FRC-0069 pieceCidV2."
    )
    version: str


@router.get(
    "/config",
    response_model=ConfigView,
    responses=error_responses(401),
    summary="Server settings the page uses",
)
async def get_config() -> ConfigView:
    """The content provider's public URL (or null), the piece CID version of piece links and the
    server's version."""
    return ConfigView(
        public_url=configured_public_url(),
        piece_cid_version=configured_piece_cid_version(),
        version=dataset_worker.__version__,
    )
