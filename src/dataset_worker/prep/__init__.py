"""Preparation use-cases shared by the CLI and the HTTP API: create, list, status, start/pause
scan/pack/daggen, pieces and the jobs list. Errors are PrepError subclasses (see `errors`).

The names below are loaded on first use: importing one light submodule (keys, errors, the
status and jobs reads of short CLI commands) must not import the ORM and pydantic through
this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from dataset_worker.prep.rescan import rescan_preparation
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

# Public name → the submodule that defines it.
_HOMES = {
    **dict.fromkeys(
        ("pause_daggen", "pause_pack", "pause_scan", "start_daggen", "start_pack", "start_scan"),
        "control",
    ),
    "create_preparation": "create",
    **dict.fromkeys(("Conflict", "InvalidParameter", "NotFound", "PrepError"), "errors"),
    "list_jobs": "jobs",
    "list_preparations": "lookup",
    "list_pieces": "pieces",
    "retry_jobs": "retry",
    "rescan_preparation": "rescan",
    "get_preparation_status": "status",
    **dict.fromkeys(
        (
            "CreatePreparationRequest",
            "JobListItem",
            "JobPage",
            "JobView",
            "PieceView",
            "PreparationStatus",
            "PreparationView",
            "StorageView",
        ),
        "views",
    ),
}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines `name` on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


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
    "rescan_preparation",
    "retry_jobs",
    "start_daggen",
    "start_pack",
    "start_scan",
]
