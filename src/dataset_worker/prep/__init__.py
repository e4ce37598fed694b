"""Preparation use-cases shared by the CLI and the HTTP API: create, list, status, start/pause
scan/pack/daggen, pieces and the jobs list. Errors are PrepError subclasses (see `errors`)."""

from __future__ import annotations

from dataset_worker.prep.control import (
    pause_daggen,
    pause_pack,
    pause_scan,
    start_daggen,
    start_pack,
    start_scan,
)
from dataset_worker.prep.create import create_preparation
from dataset_worker.prep.errors import Conflict, InvalidParameter, NotFound, PrepError
from dataset_worker.prep.jobs import list_jobs
from dataset_worker.prep.lookup import list_preparations
from dataset_worker.prep.pieces import list_pieces
from dataset_worker.prep.retry import retry_jobs
from dataset_worker.prep.status import get_preparation_status
from dataset_worker.prep.views import (
    CreatePreparationRequest,
    JobListItem,
    JobPage,
    JobView,
    PieceView,
    PreparationStatus,
    PreparationView,
    StorageView,
)

__all__ = [
    "Conflict",
    "CreatePreparationRequest",
    "InvalidParameter",
    "JobListItem",
    "JobPage",
    "JobView",
    "NotFound",
    "PieceView",
    "PrepError",
    "PreparationStatus",
    "PreparationView",
    "StorageView",
    "create_preparation",
    "get_preparation_status",
    "list_jobs",
    "list_pieces",
    "list_preparations",
    "pause_daggen",
    "pause_pack",
    "pause_scan",
    "retry_jobs",
    "start_daggen",
    "start_pack",
    "start_scan",
]
