"""DELETE /api/preparations/{name}: remove a preparation, its rows and (optionally) its CARs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from dataset_worker.api.errors import error_responses
from dataset_worker.api.routes.preparations import AppServices, Name
from dataset_worker.prep.delete import DeleteReport, delete_preparation

router = APIRouter(prefix="/api/preparations", tags=["preparations"])

DeleteCars = Annotated[
    bool,
    Query(
        alias="deleteCars",
        description="Also remove its CAR files (<pieceCID>.car of its pieces; nothing else).",
    ),
]


@router.delete(
    "/{name}", response_model=DeleteReport, responses=error_responses(400, 401, 404, 409)
)
def delete(app: AppServices, name: Name, delete_cars: DeleteCars = False) -> DeleteReport:
    """Delete the preparation: jobs, folders, files, ranges, pieces and its own storages.

    409 (naming the jobs) while any of its jobs is processing. A delete cut short is finished
    by deleting again.
    """
    return delete_preparation(app.db, name, delete_cars=delete_cars)
