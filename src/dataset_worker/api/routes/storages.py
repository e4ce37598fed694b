"""/api/storages…: named storages (local folders, S3 buckets) over the use-cases the CLI calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from dataset_worker.api.errors import error_responses
from dataset_worker.api.services import Services, services
from dataset_worker.prep.storages import (
    CreateStorageRequest,
    NamedStorageView,
    StorageCheckView,
    check_storage,
    create_storage,
    delete_storage,
    get_storage,
    list_storages,
)

router = APIRouter(prefix="/api/storages", tags=["storages"])

Name = Annotated[str, Path(min_length=1, max_length=255, description="Storage name or id.")]
AppServices = Annotated[Services, Depends(services)]


@router.get("", response_model=list[NamedStorageView], responses=error_responses(401))
def storages(app: AppServices) -> list[NamedStorageView]:
    """Every storage, by id; secrets in configs are shown as ***."""
    return list_storages(app.db)


@router.post(
    "",
    status_code=201,
    response_model=NamedStorageView,
    responses=error_responses(400, 401, 409),
)
def create(app: AppServices, request: CreateStorageRequest) -> NamedStorageView:
    """Create a named storage (s3://bucket/prefix or an absolute folder)."""
    return create_storage(app.db, request)


@router.get("/{name}", response_model=NamedStorageView, responses=error_responses(400, 401, 404))
def show(app: AppServices, name: Name) -> NamedStorageView:
    """One storage with the preparations that use it."""
    return get_storage(app.db, name)


@router.post(
    "/{name}/check", response_model=StorageCheckView, responses=error_responses(400, 401, 404)
)
def check(app: AppServices, name: Name) -> StorageCheckView:
    """Read the storage's root: `ok`, a message, and its first entries."""
    return check_storage(app.db, name)


@router.delete(
    "/{name}", response_model=NamedStorageView, responses=error_responses(400, 401, 404, 409)
)
def delete(app: AppServices, name: Name) -> NamedStorageView:
    """Delete a storage no preparation uses (its files are not touched)."""
    return delete_storage(app.db, name)
