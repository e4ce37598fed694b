"""The content provider's FastAPI app: pieces by CID over HTTP, for storage providers.

`GET|HEAD /piece/{pieceCid}` follows what Boost's HTTP transport and FRC-0066 retrieval clients
expect: the CAR bytes with Content-Length, byte ranges (206, multipart for several), 416 for
ranges past the end, strong ETag = the piece CID, and conditional requests. It runs in its own
process (`dataset-worker content-provider`) and only reads the database.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

import dataset_worker
from dataset_worker.api.errors import ErrorBody, describe_validation_error, error_response
from dataset_worker.logs import log_event
from dataset_worker.provider.fastpath import PieceFastPath
from dataset_worker.provider.gateway import add_gateway_routes
from dataset_worker.provider.metadata import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PieceMetadata,
    piece_metadata,
)
from dataset_worker.provider.piececid import InvalidPieceCid, parse_piece_ref
from dataset_worker.provider.pieces import PieceCatalog, PieceNotFound, PieceUnavailable
from dataset_worker.provider.reply import piece_reply
from dataset_worker.provider.response import CAR_MEDIA_TYPE
from dataset_worker.provider.zerocopy import ZeroCopySendMiddleware

log = logging.getLogger(__name__)

DESCRIPTION = """\
Serves the pieces (CAR files) of prepared datasets to storage providers, by piece CID.

`GET /piece/{pieceCid}` answers as Boost's HTTP transport expects: the CAR bytes (padding
included), byte ranges (`Range`, 206, `multipart/byteranges` for several), `ETag` = the quoted
piece CID, `If-None-Match`, `If-Modified-Since` and `If-Range`. Errors are
`{"error": "<sentence>", "detail": <optional>}`. With a token configured, every request except
`/healthz` and this document needs `Authorization: Bearer <token>`.
"""

PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json"})
PieceCidPath = Annotated[
    str,
    Path(
        alias="pieceCid",
        description="A piece CID: v1 (base32 CIDv1, fil-commitment-unsealed, "
        "sha2-256-trunc254-padded), e.g. baga6ea4seaq…, or v2 (FRC-0069, raw, "
        "fr32-sha256-trunc254-padbintree), e.g. bafkzcib…, which also names the payload size.",
    ),
]


def _car_content(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {CAR_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


PIECE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _car_content("The whole piece: the CAR file, zero padding included."),
    206: {
        "description": "One range (Content-Range), or several as multipart/byteranges.",
        "content": {
            CAR_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            "multipart/byteranges": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    304: {"description": "Not modified (If-None-Match or If-Modified-Since matched)."},
    400: _error("The id is not a piece CID."),
    401: _error("Missing or wrong token."),
    404: _error("No piece with this CID is known here."),
    409: _error(
        "The CAR file differs from the record (size, type) or cannot be read; for an inline "
        "piece, a source file it is rebuilt from is gone or changed since the scan."
    ),
    410: _error("The CAR file (or its storage, or an inline piece's source) is gone."),
    416: _error("No requested range overlaps the piece; Content-Range gives its size."),
    501: _error("The piece is in a kind of storage not served yet."),
}
METADATA_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The id is not a piece CID, or a query parameter is invalid."),
    401: _error("Missing or wrong token."),
    404: _error("No piece with this CID is known here."),
}


class TokenMiddleware:
    """With a token, refuse requests without `Authorization: Bearer <token>` (401) first."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in PUBLIC_PATHS:
            header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if not _bearer_matches(header, self.token):
                message = (
                    "Missing token: send the header Authorization: Bearer <token>"
                    if header is None
                    else "Invalid token"
                )
                response = error_response(401, message)
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _bearer_matches(header: bytes | None, token: bytes) -> bool:
    if not header:
        return False
    scheme, _, credential = header.partition(b" ")
    return scheme.lower() == b"bearer" and secrets.compare_digest(credential.strip(), token)


def create_provider_app(
    catalog: PieceCatalog, *, token: str | None = None, zero_copy: bool = False
) -> ASGIApp:
    """The provider's ASGI app over `catalog`; `token` makes every piece request need it.

    `zero_copy` sends piece bytes with sendfile when the server allows it. It costs about a third
    of the CPU of reading and writing them, but measured about 10% slower on loopback (the
    receiver copies out of page-cache pages), so reads are the default.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        catalog.db.dispose()

    app = FastAPI(
        title="dataset-worker content provider",
        version=dataset_worker.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # Swagger UI would load from a CDN; the document is at /openapi.json
        redoc_url=None,
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    _install_error_handlers(app)
    _add_routes(app, catalog)
    add_gateway_routes(app, catalog.db)  # /ipfs/{cid}: the prepared DAGs, trustless
    wrapped: ASGIApp = PieceFastPath(app, catalog)
    if token is not None:
        wrapped = TokenMiddleware(wrapped, token=token)
    if zero_copy:
        wrapped = ZeroCopySendMiddleware(wrapped)
    return wrapped


def _add_routes(app: FastAPI, catalog: PieceCatalog) -> None:
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route(
        "/piece/{pieceCid}",
        methods=["GET", "HEAD"],
        responses=PIECE_RESPONSES,
        response_class=Response,
        summary="A piece's bytes (the CAR file), whole or by byte ranges",
    )
    def get_piece(
        request: Request,
        piece_cid: PieceCidPath,
        range_header: Annotated[
            str | None,
            Header(
                alias="Range", description="bytes=first-last, first-, -suffix; comma-separated."
            ),
        ] = None,
        if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
        if_modified_since: Annotated[str | None, Header(alias="If-Modified-Since")] = None,
        if_range: Annotated[str | None, Header(alias="If-Range")] = None,
    ) -> Response:
        ref = parse_piece_ref(piece_cid)
        record, reader = catalog.open_records(ref.matching(catalog.records(ref.v1)))
        try:
            return piece_reply(
                request.method, record, reader, range_header, if_none_match, if_modified_since,
                if_range,
            )  # fmt: skip
        except BaseException:
            reader.close()
            raise

    @app.get(
        "/piece/metadata/{pieceCid}",
        response_model=PieceMetadata,
        response_model_by_alias=True,
        responses=METADATA_RESPONSES,
        summary="What a piece holds: its record, block count and file ranges (paged)",
    )
    def get_piece_metadata(
        piece_cid: PieceCidPath,
        limit: Annotated[
            int, Query(ge=1, le=MAX_LIMIT, description="Ranges per page.")
        ] = DEFAULT_LIMIT,
        cursor: Annotated[
            int | None,
            # Row ids are 64-bit signed integers in both databases; a larger cursor is a client
            # mistake (400), not a driver overflow (500).
            Query(ge=0, le=2**63 - 1, description="The `nextCursor` of the previous page."),
        ] = None,
    ) -> PieceMetadata:
        return piece_metadata(catalog, parse_piece_ref(piece_cid), limit=limit, cursor=cursor)


def _install_error_handlers(app: FastAPI) -> None:
    async def invalid_cid(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(400, str(exc), errors=[{"field": "pieceCid", "message": str(exc)}])

    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(404, str(exc))

    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PieceUnavailable)
        return error_response(exc.status, str(exc), {"file": exc.file} if exc.file else None)

    async def validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [describe_validation_error(error) for error in exc.errors()]
        message = problems[0]["message"] if problems else "invalid request"
        errors = [{"field": p["field"], "message": p["message"]} for p in problems]
        return error_response(400, message, problems, errors=errors)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            message = f"No such endpoint: {request.url.path}"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log_event(
            log,
            "provider.error",
            logging.ERROR,
            method=request.method,
            path=request.url.path,
            error=f"{type(exc).__name__}: {exc}",
        )
        return error_response(500, f"Internal error: {type(exc).__name__}: {exc}")

    app.add_exception_handler(InvalidPieceCid, invalid_cid)
    app.add_exception_handler(PieceNotFound, not_found)
    app.add_exception_handler(PieceUnavailable, unavailable)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without the 422 replies: validation errors are 400 here."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema
