"""Verifications of a preparation, run in the background by the server.

`POST /api/preparations/{name}/verify` starts one (202), `GET …/verify/{id}` and
`GET …/verifications/{id}` give its state, progress and report, `GET …/verify` the latest one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import ConfigDict, Field

from dataset_worker.api.errors import error_responses
from dataset_worker.api.services import Services, services
from dataset_worker.prep.lookup import MAX_KEY_LENGTH
from dataset_worker.prep.verifications import (
    get_verification,
    latest_verification,
    start_verification,
)
from dataset_worker.prep.views import View

router = APIRouter(prefix="/api/preparations", tags=["preparations"])

NamePath = Annotated[
    str, Path(min_length=1, max_length=MAX_KEY_LENGTH, description="Preparation name or id.")
]
IdPath = Annotated[str, Path(max_length=64, description="The id the POST replied with.")]


class VerifyRequest(View):
    """How thoroughly to verify."""

    model_config = ConfigDict(extra="forbid")

    deep: bool = Field(
        default=False,
        description="Also rebuild every file from the DAG and compare it with the source file.",
    )


class VerificationView(View):
    """A verification: state is running, clean, problems or failed."""

    id: str
    preparation: dict[str, Any]
    deep: bool
    state: str = Field(description="running, clean, problems or failed.")
    started_at: str
    finished_at: str | None
    progress: dict[str, Any] | None = Field(
        description="{stage, done, total}: bytes done in the current stage."
    )
    report: dict[str, Any] | None = Field(description="`dataset-worker verify --json`'s report.")
    error: str | None = Field(description="Why a failed verification could not finish.")


@router.post(
    "/{name}/verify",
    status_code=202,
    response_model=VerificationView,
    responses=error_responses(400, 401, 404, 409),
    summary="Start verifying a preparation's CARs (and files, with deep)",
)
def start(
    app: Annotated[Services, Depends(services)],
    name: NamePath,
    request: Annotated[VerifyRequest | None, Body()] = None,
) -> VerificationView:
    """Run `dataset-worker verify` in the background; poll the id the reply gives. 409 while
    a verification of the preparation runs."""
    deep = request.deep if request is not None else False
    record = start_verification(app.db, app.settings.state_dir, name, deep=deep)
    return VerificationView.model_validate(record)


@router.get(
    "/{name}/verify",
    response_model=VerificationView | None,
    responses=error_responses(400, 401, 404),
    summary="The latest verification of a preparation (null if none)",
)
def latest(app: Annotated[Services, Depends(services)], name: NamePath) -> VerificationView | None:
    """The most recently started verification, whatever its state."""
    record = latest_verification(app.db, app.settings.state_dir, name)
    return None if record is None else VerificationView.model_validate(record)


@router.get(
    "/{name}/verify/{verification_id}",
    response_model=VerificationView,
    responses=error_responses(400, 401, 404),
    summary="One verification: state, progress and report",
)
@router.get(
    "/{name}/verifications/{verification_id}",
    response_model=VerificationView,
    responses=error_responses(400, 401, 404),
    include_in_schema=False,
)
def one(
    app: Annotated[Services, Depends(services)], name: NamePath, verification_id: IdPath
) -> VerificationView:
    """A verification by id (records are kept in the state dir, across restarts)."""
    record = get_verification(app.db, app.settings.state_dir, name, verification_id)
    return VerificationView.model_validate(record)
