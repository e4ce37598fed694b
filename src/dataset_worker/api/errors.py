"""One place that maps errors to HTTP statuses, and the one error body: {"error", "detail"}.

Manager and preparation errors are types; each type has one status here. FastAPI's validation
errors become 400 (never 422) with a sentence naming the field and the rule. Every 400 also lists
all the problems found, each with its field, in `errors`. Anything unexpected is a 500 with the
reason, in the same body shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from dataset_worker.deals.errors import (
    DealError,
    DealNotFound,
    InvalidDealRequest,
    WalletUnavailable,
)
from dataset_worker.logs import log_event
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
    InvalidParameters,
    NotFound,
    PrepError,
)

log = logging.getLogger(__name__)


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


class FieldError(BaseModel):
    """One problem of a 400 reply."""

    field: str | None = Field(
        description='The request field, as spelled in the request ("maxSize", "timeout"); '
        "null when the rule spans fields or the body as a whole."
    )
    message: str = Field(description="What is wrong with it, naming the field and the rule.")


class ErrorBody(BaseModel):
    """Every error reply."""

    error: str = Field(description="What went wrong, as a sentence.")
    detail: Any = Field(default=None, description="Optional structured information.")
    pid: int | None = Field(default=None, description="The running worker's pid (409 on start).")
    errors: list[FieldError] | None = Field(
        default=None,
        description="400 only: every problem found in the request, each with the field it is "
        "about, so a form can mark all its invalid fields at once. `error` and `detail` are "
        "kept as before.",
    )


_DESCRIPTIONS = {
    400: "Invalid request: the message names the field and the rule.",
    401: "Missing or wrong admin token.",
    404: "Not found.",
    409: "Conflict with the current state.",
    500: "Unexpected failure, with the reason.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error statuses an operation can return."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def error_response(status: int, message: str, detail: Any = None, **extra: Any) -> JSONResponse:
    """The JSON error reply."""
    body: dict[str, Any] = {"error": message, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status)


def status_of(exc: Exception) -> int:
    """The HTTP status of a known error type (500 for anything else)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_OF_ERROR:
            return STATUS_OF_ERROR[cls]
    return 500


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the one body shape."""
    app.add_exception_handler(ManagerError, _known_error)
    app.add_exception_handler(PrepError, _known_error)
    app.add_exception_handler(BadRequest, _known_error)
    app.add_exception_handler(DealError, _known_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


async def _known_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, WorkerAlreadyRunning):
        # The current run: its pid and run id (both null while it is still starting).
        detail = {"pid": exc.pid, "runId": exc.run_id} if exc.pid is not None else None
        return error_response(409, str(exc), detail, pid=exc.pid)
    status = status_of(exc)
    if status == 400:
        return error_response(400, str(exc), errors=_field_errors(exc))
    return error_response(status, str(exc))


def _field_errors(exc: Exception) -> list[dict[str, Any]]:
    """The `errors` list of a 400 raised as an exception: one entry per problem it carries."""
    problems = exc.problems if isinstance(exc, InvalidParameters) else [exc]
    return [
        {"field": getattr(problem, "field", None), "message": str(problem)} for problem in problems
    ]


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [describe_validation_error(error) for error in exc.errors()]
    message = problems[0]["message"] if problems else "invalid request"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    errors = [{"field": p["field"], "message": p["message"]} for p in problems]
    return error_response(400, message, problems, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"No such endpoint or file: {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    extra = {"errors": _field_errors(Exception(message))} if exc.status_code == 400 else {}
    response = error_response(exc.status_code, message, **extra)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log_event(
        log,
        "api.error",
        logging.ERROR,
        method=request.method,
        path=request.url.path,
        error=f"{type(exc).__name__}: {exc}",
    )
    return error_response(500, f"Internal error: {type(exc).__name__}: {exc}")


# -- validation messages ---------------------------------------------------------------------

_LOCATION_NAMES = {"query": "query parameter", "path": "path parameter", "header": "header"}


def describe_validation_error(error: dict[str, Any]) -> dict[str, Any]:
    """{"field", "message"} for one pydantic error, the message naming the field and the rule."""
    loc = [str(part) for part in error.get("loc", ())]
    where = loc[0] if loc else "body"
    field = ".".join(loc[1:])
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "json_invalid":
        field = ""  # the location is a character position, not a field
    label = f"{_LOCATION_NAMES[where]} {field}" if where in _LOCATION_NAMES else field
    message = _message(kind, label, ctx, error)
    return {"field": field or None, "in": where, "message": message}


def _message(kind: str, label: str, ctx: dict[str, Any], error: dict[str, Any]) -> str:
    subject = label or "the request body"
    if kind == "json_invalid":
        return f"the request body is not valid JSON: {ctx.get('error', 'parse error')}"
    if kind in ("model_attributes_type", "dict_type", "model_type") and not label:
        return "the request body must be a JSON object"
    if kind == "missing":
        return f"{subject} is required"
    if kind == "extra_forbidden":
        return f"{subject} is not a known field"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{subject} must be an integer"
    if kind in ("bool_type", "bool_parsing"):
        return f"{subject} must be true or false"
    if kind in ("string_type", "str_type"):
        return f"{subject} must be a string"
    if kind in ("float_type", "float_parsing"):
        return f"{subject} must be a number"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "")
        words = {
            "greater_than_equal": "at least",
            "greater_than": "greater than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        return f"{subject} must be {words} {bound}"
    if kind in ("string_too_long", "string_too_short"):
        limit = ctx.get("max_length", ctx.get("min_length"))
        words = "at most" if kind == "string_too_long" else "at least"
        return f"{subject} must be {words} {limit} character{'s' if limit != 1 else ''} long"
    if kind in ("enum", "literal_error"):
        return f"{subject} must be {ctx.get('expected', 'one of the allowed values')}"
    text = str(error.get("msg", "is invalid"))
    if kind in _OWN_RULES:
        return text  # our own rules (PydanticCustomError) already name their field
    return f"{subject}: {text}" if label else text


_OWN_RULES = frozenset(
    {
        "concurrency_range",
        "duration_parsing",
        "duration_positive",
        "no_job_types",
        "interval_order",
        "max_attempts_range",
    }
)
