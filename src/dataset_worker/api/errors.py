"""One place that maps the admin server's errors to HTTP statuses.

Manager and preparation errors are types; each type has one status here. The body shape, the
400s of validation errors and the 500s of unexpected failures (a request id, never the
exception's text) are the HTTP edge's (`httpedge/errors.py`), shared with the content provider.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dataset_worker.deals.errors import (
    DealError,
    DealNotFound,
    InvalidDealRequest,
    WalletUnavailable,
)
from dataset_worker.httpedge.errors import (
    ErrorBody,
    error_response,
    field_errors,
)
from dataset_worker.httpedge.errors import (
    install_error_handlers as install_edge_handlers,
)
from dataset_worker.httpedge.headers import COMMON_HEADERS, PAGE_POLICY
from dataset_worker.manager.errors import (
    ManagerError,
    NoWorkerLogs,
    WorkerAlreadyRunning,
    WorkerNotRunning,
    WorkerSpawnFailed,
    WorkerStarting,
)
from dataset_worker.prep.errors import (
    Conflict,
    InvalidParameter,
    NotFound,
    PrepError,
)


class BadRequest(Exception):
    """A request whose parameters contradict each other (HTTP 400)."""


STATUS_OF_ERROR: dict[type[Exception], int] = {
    BadRequest: 400,
    InvalidParameter: 400,
    NotFound: 404,
    WorkerNotRunning: 404,
    NoWorkerLogs: 404,
    Conflict: 409,
    WorkerAlreadyRunning: 409,
    WorkerStarting: 409,
    WorkerSpawnFailed: 500,
    InvalidDealRequest: 400,
    DealNotFound: 404,
    WalletUnavailable: 409,
}

# PydanticCustomError types of the API's own rules: their messages name the field already.
OWN_RULES = frozenset(
    {
        "concurrency_range",
        "duration_parsing",
        "duration_positive",
        "no_job_types",
        "interval_order",
        "max_attempts_range",
    }
)

_DESCRIPTIONS = {
    400: "Invalid request: the message names the field and the rule.",
    401: "Missing or wrong admin token.",
    404: "Not found.",
    409: "Conflict with the current state.",
    500: "Unexpected failure: the reply carries the request id it was logged under (also in "
    "X-Request-Id), or, for a worker that failed to start, the reason.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error statuses an operation can return."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def status_of(exc: Exception) -> int:
    """The HTTP status of a known error type (500 for anything else)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_OF_ERROR:
            return STATUS_OF_ERROR[cls]
    return 500


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the one body shape."""
    install_edge_handlers(
        app,
        service="api",
        not_found="No such endpoint or file",
        own_rules=OWN_RULES,
        failure_headers={**COMMON_HEADERS, "Content-Security-Policy": PAGE_POLICY},
    )
    app.add_exception_handler(ManagerError, _known_error)
    app.add_exception_handler(PrepError, _known_error)
    app.add_exception_handler(BadRequest, _known_error)
    app.add_exception_handler(DealError, _known_error)


async def _known_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, WorkerAlreadyRunning):
        # The current run: its pid and run id (both null while it is still starting).
        detail = {"pid": exc.pid, "runId": exc.run_id} if exc.pid is not None else None
        return error_response(409, str(exc), detail, pid=exc.pid)
    status = status_of(exc)
    if status == 400:
        return error_response(400, str(exc), errors=field_errors(exc))
    return error_response(status, str(exc))
