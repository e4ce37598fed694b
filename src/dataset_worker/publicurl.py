"""The content provider's public base URL, as the admin page shows piece links with it, and
the piece CID version (1, or 2 for FRC-0069) those links use.

`dataset-worker serve --public-url URL [--piece-cid-version 2]` puts them in the environment
(DATASET_WORKER_PUBLIC_URL, DATASET_WORKER_PIECE_CID_VERSION), which every server process
(`--workers N`) inherits; `GET /api/config` hands them to the page.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

ENV_PUBLIC_URL = "DATASET_WORKER_PUBLIC_URL"
ENV_PIECE_CID_VERSION = "DATASET_WORKER_PIECE_CID_VERSION"
PIECE_CID_VERSIONS = (1, 2)


def normalize_public_url(text: str) -> str:
    """The URL without a trailing slash; ValueError naming the rule when it is not usable."""
    value = text.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f'--public-url must be an http:// or https:// URL, got "{text}"')
    if parts.query or parts.fragment:
        raise ValueError(f'--public-url must not have a query or fragment, got "{text}"')
    return value.rstrip("/")


def configured_public_url() -> str | None:
    """The configured URL, or None when there is none (or it is not a valid one)."""
    value = os.environ.get(ENV_PUBLIC_URL)
    if not value:
        return None
    try:
        return normalize_public_url(value)
    except ValueError:
        return None


def configured_piece_cid_version() -> int:
    """The piece CID version piece links use: 2 when configured so, else 1."""
    return 2 if os.environ.get(ENV_PIECE_CID_VERSION, "").strip() == "2" else 1
