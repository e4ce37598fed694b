"""/api/preparations…: thin routes over the preparation use-cases the CLI calls too."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from dataset_worker.api.errors import error_responses
from dataset_worker.api.services import Services, services
from dataset_worker.prep import (
    CreatePreparationRequest,
    JobView,
    PieceView,
    PreparationStatus,
    PreparationView,
    create_preparation,
    get_preparation_status,
    list_pieces,
    list_preparations,
    pause_daggen,
    pause_pack,
    pause_scan,
    rescan_preparation,
    start_daggen,
    start_pack,
    start_scan,
)
from dataset_worker.prep.lookup import MAX_KEY_LENGTH

router = APIRouter(prefix="/api/preparations", tags=["preparations"])

Name = Annotated[
    str, Path(min_length=1, max_length=MAX_KEY_LENGTH, description="Preparation name or id.")
]
AppServices = Annotated[Services, Depends(services)]
Force = Annotated[
    bool,
    Query(description="Build the DAG again even though the daggen job is complete."),
]
JobId = Annotated[
    int | None, Query(alias="jobId", ge=1, le=2**62, description="One pack job (default: all).")
]


@router.get("", response_model=list[PreparationView], responses=error_responses(401))
def preparations(app: AppServices) -> list[PreparationView]:
    """Every preparation."""
    return list_preparations(app.db)


@router.post(
    "",
    status_code=201,
    response_model=PreparationView,
    responses=error_responses(400, 401, 404, 409),
)
def create(app: AppServices, request: CreatePreparationRequest) -> PreparationView:
    """Create a preparation over a local source folder and output folder (docs/formats.md#preparation-sizes rules).

    Over HTTP the folders must be absolute paths: the server's working directory means nothing
    to the client.
    """
    view = create_preparation(app.db, request, strict_references=True, absolute_folders=True)
    app.wake_workers()  # its scan is queued (unless noAuto)
    return view


@router.get("/{name}", response_model=PreparationStatus, responses=error_responses(400, 401, 404))
def preparation_status(app: AppServices, name: Name) -> PreparationStatus:
    """Jobs per type and state, files and bytes scanned, bytes packed, pieces, root CID."""
    return get_preparation_status(app.db, name)


@router.post(
    "/{name}/start-scan", response_model=JobView, responses=error_responses(400, 401, 404, 409)
)
def scan_start(app: AppServices, name: Name) -> JobView:
    """Make the scan job ready (created on first use)."""
    view = start_scan(app.db, name)
    app.wake_workers()
    return view


@router.post(
    "/{name}/rescan",
    response_model=JobView,
    responses=error_responses(400, 401, 404, 409),
    summary="Rescan and re-plan",
)
def rescan(app: AppServices, name: Name) -> JobView:
    """Queue the scan again: it records the new versions of changed files and the new files,
    rebuilds the unfinished pack jobs that hold a changed or vanished file, drops vanished files
    and leaves completed pieces as they are (409 while the scan is already queued or running)."""
    view = rescan_preparation(app.db, name)
    app.wake_workers()
    return view


@router.post("/{name}/pause-scan", response_model=JobView, responses=error_responses(400, 401, 404))
def scan_pause(app: AppServices, name: Name) -> JobView:
    """Pause the scan job."""
    return pause_scan(app.db, name)


@router.post(
    "/{name}/start-daggen", response_model=JobView, responses=error_responses(400, 401, 404, 409)
)
def daggen_start(app: AppServices, name: Name, force: Force = False) -> JobView:
    """Make the daggen job ready (created on first use); 409 when it is queued, running, or
    done (unless `force`)."""
    view = start_daggen(app.db, name, force=force)
    app.wake_workers()
    return view


@router.post(
    "/{name}/pause-daggen", response_model=JobView, responses=error_responses(400, 401, 404)
)
def daggen_pause(app: AppServices, name: Name) -> JobView:
    """Pause the daggen job."""
    return pause_daggen(app.db, name)


@router.post(
    "/{name}/start-pack", response_model=list[JobView], responses=error_responses(400, 401, 404)
)
def pack_start(app: AppServices, name: Name, job_id: JobId = None) -> list[JobView]:
    """Make one pack job, or every eligible one, ready again."""
    views = start_pack(app.db, name, job_id)
    app.wake_workers()
    return views


@router.post(
    "/{name}/pause-pack", response_model=list[JobView], responses=error_responses(400, 401, 404)
)
def pack_pause(app: AppServices, name: Name, job_id: JobId = None) -> list[JobView]:
    """Pause one pack job, or every ready or running one."""
    return pause_pack(app.db, name, job_id)


@router.get(
    "/{name}/pieces", response_model=list[PieceView], responses=error_responses(400, 401, 404)
)
def pieces(app: AppServices, name: Name) -> list[PieceView]:
    """The pieces (CAR files) of the preparation."""
    return list_pieces(app.db, name)
