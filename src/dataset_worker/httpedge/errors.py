"""The one error body of both servers, `{"error", "detail"}`, and the handlers that give every
error that shape.

Validation errors become 400 (never 422) with a sentence naming the field and the rule, and list
every problem with its field in `errors`. Anything unexpected is a 500 whose body carries only a
request id (also in the `X-Request-Id` header), never the exception's text: the exception is
logged with that id, for the operator to find.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from dataset_worker.logs import log_event

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"


class FieldError(BaseModel):
    """One problem of a 400 reply."""

    field: str | None = Field(
        description='The request field, as spelled in the request ("maxSize", "timeout"); '
        "null when the rule spans fields or the body as a whole."
    )
    message: str = Field(description="What is wrong with it, naming the field and the rule.")


class ErrorBody(BaseModel):
    """Every error reply."""

    model_config = ConfigDict(populate_by_name=True)

    error: str = Field(description="What went wrong, as a sentence.")
    detail: Any = Field(default=None, description="Optional structured information.")
    pid: int | None = Field(default=None, description="The running worker's pid (409 on start).")
    errors: list[FieldError] | None = Field(
        default=None,
        description="400 only: every problem found in the request, each with the field it is "
        "about, so a form can mark all its invalid fields at once. `error` and `detail` are "
        "kept as before.",
    )
    request_id: str | None = Field(
        default=None,
        alias="requestId",
        description="500 only: the id the server logged the failure under (also in the "
        "X-Request-Id header); the reply itself never carries the exception's text.",
    )


def error_response(status: int, message: str, detail: Any = None, **extra: Any) -> JSONResponse:
    """The JSON error reply."""
    body: dict[str, Any] = {"error": message, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status)


def field_errors(exc: Exception) -> list[dict[str, Any]]:
    """The `errors` list of a 400 raised as an exception: one entry per problem it carries (its
    `problems` attribute, else the exception itself), each with its `field` when it has one."""
    problems = getattr(exc, "problems", None) or [exc]
    return [
        {"field": getattr(problem, "field", None), "message": str(problem)} for problem in problems
    ]


def install_error_handlers(
    app: FastAPI,
    *,
    service: str,
    not_found: str = "No such endpoint",
    own_rules: Iterable[str] = (),
    failure_headers: Mapping[str, str] | None = None,
) -> None:
    """Register the handlers that give validation errors, HTTP errors and unexpected failures
    the one body shape. `service` prefixes the logged event ("api" → `api.error`); `not_found`
    starts the 404 sentence; `own_rules` are the PydanticCustomError types whose messages
    already name their field; `failure_headers` go on every 500 (Starlette sends those from
    outside the app's middleware, so a header middleware never sees them). A server adds the
    handlers of its own error types after this."""
    rules = frozenset(own_rules)

    async def validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [describe_validation_error(error, rules) for error in exc.errors()]
        message = problems[0]["message"] if problems else "invalid request"
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        errors = [{"field": p["field"], "message": p["message"]} for p in problems]
        return error_response(400, message, problems, errors=errors)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            message = f"{not_found}: {request.url.path}"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        extra = {"errors": field_errors(Exception(message))} if exc.status_code == 400 else {}
        response = error_response(exc.status_code, message, **extra)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        response = internal_error(request.method, request.url.path, exc, service=service)
        response.headers.update(failure_headers or {})
        return response

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def new_request_id() -> str:
    """A fresh id for one failed request: 16 hex digits, enough to find it in the log."""
    return secrets.token_hex(8)


def internal_error(method: str, path: str, exc: BaseException, *, service: str) -> JSONResponse:
    """The 500 reply of an unexpected failure: the exception goes to the log under a new request
    id, and the client gets only that id (the exception's text may hold paths or secrets)."""
    request_id = new_request_id()
    log_event(
        log,
        f"{service}.error",
        logging.ERROR,
        request_id=request_id,
        method=method,
        path=path,
        error=f"{type(exc).__name__}: {exc}",
    )
    response = error_response(
        500,
        f"Internal error: the server logged it under request id {request_id}",
        requestId=request_id,
    )
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


# -- validation messages ---------------------------------------------------------------------

_LOCATION_NAMES = {"query": "query parameter", "path": "path parameter", "header": "header"}


def describe_validation_error(
    error: dict[str, Any], own_rules: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """{"field", "in", "message"} for one pydantic error, the message naming the field and the
    rule. Errors of a type in `own_rules` keep their message, which names the field already."""
    loc = [str(part) for part in error.get("loc", ())]
    where = loc[0] if loc else "body"
    field = ".".join(loc[1:])
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "json_invalid":
        field = ""  # the location is a character position, not a field
    label = f"{_LOCATION_NAMES[where]} {field}" if where in _LOCATION_NAMES else field
    if kind in own_rules:
        message = str(error.get("msg", "is invalid"))
    else:
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
    return f"{subject}: {text}" if label else text
