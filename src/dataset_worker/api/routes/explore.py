"""/api/preparations/{name}/explore[/{path}]: a folder of a preparation's source, a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from dataset_worker.api.errors import error_responses
from dataset_worker.api.routes.preparations import AppServices, Name
from dataset_worker.prep.explore import (
    DEFAULT_LIMIT,
    MAX_CURSOR_LENGTH,
    MAX_LIMIT,
    ExplorePage,
    explore,
)

router = APIRouter(prefix="/api/preparations", tags=["preparations"])

# Shorter than a file system's PATH_MAX (the CLI takes those): percent-encoded, a path of
# 4-byte characters takes 12 bytes per character, and the request line must stay well inside
# what the HTTP server accepts.
MAX_URL_PATH_LENGTH = 1024

FolderPath = Annotated[
    str,
    Path(
        max_length=MAX_URL_PATH_LENGTH,
        description='Folder relative to the source root, e.g. "photos/2024" ("" is the root).',
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Entries per page.")]
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="nextCursor of the previous page."),
]
RESPONSES = error_responses(400, 401, 404)


@router.get("/{name}/explore", response_model=ExplorePage, responses=RESPONSES)
def explore_root(
    app: AppServices, name: Name, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> ExplorePage:
    """The root folder of the preparation's source: sub-folders, then files, by name."""
    return explore(app.db, name, "", limit=limit, cursor=cursor)


@router.get("/{name}/explore/{path:path}", response_model=ExplorePage, responses=RESPONSES)
def explore_folder(
    app: AppServices,
    name: Name,
    path: FolderPath,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ExplorePage:
    """A folder of the preparation's source, as recorded by the scan (newest row per file).

    404 when the scan recorded no such folder; 400 for a path with "..", "." or NUL.
    """
    return explore(app.db, name, path, limit=limit, cursor=cursor)
