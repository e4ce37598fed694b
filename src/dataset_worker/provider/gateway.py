"""A trustless gateway over the prepared DAGs: `GET|HEAD /ipfs/{cid}[/path]`.

`?format=raw` (or `Accept: application/vnd.ipld.raw`) answers one block; `?format=car` (or
`Accept: application/vnd.ipld.car`) a CARv1 rooted at the CID: the blocks on the path, then the
DAG under it depth first, each block once; neither gives a file's bytes (Range: one range is
206, several are ignored) or a directory's entries as JSON. Only blocks of this database's
preparations are served (`car_blocks`), each hash-checked as it is read. A CAR is streamed: a block
that cannot be read after the reply started ends the connection early (the client sees a short
body), the error is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from dataset_worker.content.cid import cid_from_str, cid_to_str
from dataset_worker.db import Database
from dataset_worker.httpedge.errors import ErrorBody, error_response
from dataset_worker.httpedge.headers import GATEWAY_FILE_HEADERS
from dataset_worker.logs import log_event
from dataset_worker.provider.blocks import BlockNotFound, BlockStore, BlockUnavailable
from dataset_worker.provider.dagwalk import (
    BadDag,
    PathNotFound,
    Resolved,
    directory_entries,
    file_bytes,
    file_leaves,
    file_size,
    is_directory,
    resolve_path,
    stream_car,
)
from dataset_worker.provider.ranges import RangeNotSatisfiable, parse_range
from dataset_worker.provider.response import CAR_MEDIA_TYPE

log = logging.getLogger(__name__)

RAW_MEDIA_TYPE = "application/vnd.ipld.raw"
FORMATS = {"raw": RAW_MEDIA_TYPE, "car": CAR_MEDIA_TYPE}
IMMUTABLE = "public, max-age=29030400, immutable"  # the bytes of a CID never change


class GatewayRequestError(ValueError):
    """A client mistake in a gateway request (400), naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


def _binary(*media_types: str) -> dict[str, Any]:
    return {media: {"schema": {"type": "string", "format": "binary"}} for media in media_types}


GATEWAY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The block, the CAR, the file's bytes, or a directory's entries (JSON).",
        "content": {
            **_binary(RAW_MEDIA_TYPE, CAR_MEDIA_TYPE, "application/octet-stream"),
            "application/json": {"schema": {"type": "object"}},
        },
    },
    206: {
        "description": "One byte range of a file (Content-Range).",
        "content": _binary("application/octet-stream"),
    },
    304: {"description": "Not modified (If-None-Match matched the ETag)."},
    400: _error("Not a CID, or an unknown format."),
    401: _error("Missing or wrong token."),
    404: _error("No such block here, or the path names no entry."),
    409: _error("A stored block does not match its CID, or does not decode."),
    410: _error("The CAR or source file holding a block is gone."),
    416: _error("The range does not overlap the file; Content-Range gives its size."),
    501: _error("The block is held only where this server cannot read yet."),
}


def requested_format(format_param: str | None, accept: str | None) -> str | None:
    """ "raw", "car" or None (the file's bytes); `format` wins over Accept."""
    if format_param is not None:
        if format_param not in FORMATS:
            raise GatewayRequestError(
                "format", f'format must be "raw" or "car", got "{format_param}"'
            )
        return format_param
    for item in (accept or "").split(","):
        media = item.split(";")[0].strip().lower()
        if media == RAW_MEDIA_TYPE:
            return "raw"
        if media == "application/vnd.ipld.car":
            return "car"
    return None


def parse_cid(text: str) -> bytes:
    """The binary CID of a path's first segment; GatewayRequestError naming `cid`."""
    try:
        return cid_from_str(text)
    except ValueError as exc:
        raise GatewayRequestError(
            "cid", f"{exc} (CIDs are accepted as base32 CIDv1, bafy…/bafk…)"
        ) from None


def add_gateway_routes(app: FastAPI, db: Database) -> None:
    """Register `/ipfs/{cid}` and `/ipfs/{cid}/{path}` and their error replies on `app`."""
    store = BlockStore(db)

    def ipfs(
        request: Request,
        cid: str,
        path: str = "",
        format_param: Annotated[
            str | None, Query(alias="format", description='"raw" or "car".')
        ] = None,
        accept: Annotated[str | None, Header()] = None,
        range_header: Annotated[str | None, Header(alias="Range")] = None,
        if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    ) -> Response:
        """`format=raw`: the block; `format=car`: a CARv1 of the path's blocks then the DAG
        depth first, each block once; neither: the file's bytes (one Range honoured) or a
        directory's entries as JSON. Only blocks of this database's preparations, hash-checked."""
        kind = requested_format(format_param, accept)
        root = parse_cid(cid)
        segments = [segment for segment in path.split("/") if segment]  # already decoded
        target = resolve_path(store, root, segments)
        head = request.method == "HEAD"
        if kind == "raw":
            return _raw_reply(target, if_none_match, head=head)
        if kind == "car":
            return _car_reply(store, target, if_none_match, head=head)
        return _file_reply(store, target, range_header, if_none_match, head=head)

    summary = "A block, a CAR of the DAG, or a file's bytes, by CID (trustless gateway)"
    for route in ("/ipfs/{cid}", "/ipfs/{cid}/{path:path}"):
        app.add_api_route(
            route,
            ipfs,
            methods=["GET", "HEAD"],
            response_class=Response,
            responses=GATEWAY_RESPONSES,
            summary=summary,
        )
    _install_error_handlers(app)


def _etag_matches(etag: str, if_none_match: str | None) -> bool:
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _headers(etag: str, content_type: str) -> dict[str, str]:
    # The bytes are anyone's: a browser must neither guess their type nor run them as a page
    # of this origin (an HTML file opens sandboxed, without scripts).
    return {
        "etag": etag,
        "cache-control": IMMUTABLE,
        "content-type": content_type,
        **{name.lower(): value for name, value in GATEWAY_FILE_HEADERS.items()},
    }


def _raw_reply(target: Resolved, if_none_match: str | None, *, head: bool) -> Response:
    text = cid_to_str(target.cid)
    headers = _headers(f'"{text}.raw"', RAW_MEDIA_TYPE)
    headers["content-disposition"] = f'attachment; filename="{text}.bin"'
    if _etag_matches(headers["etag"], if_none_match):
        return Response(status_code=304, headers=headers)
    headers["content-length"] = str(len(target.block))
    return Response(b"" if head else target.block, headers=headers)


def _car_reply(
    store: BlockStore, target: Resolved, if_none_match: str | None, *, head: bool
) -> Response:
    text = cid_to_str(target.cid)
    headers = _headers(f'"{text}.car"', CAR_MEDIA_TYPE)
    headers["content-disposition"] = f'attachment; filename="{text}.car"'
    if _etag_matches(headers["etag"], if_none_match):
        return Response(status_code=304, headers=headers)
    if head:
        return Response(status_code=200, headers=headers)
    # With a path, the CAR is rooted at the URL's CID and starts with the blocks of the path.
    chunks = stream_car(store, target.visited[0][0], target)
    return StreamingResponse(_logged(chunks, text), headers=headers)


def _file_reply(
    store: BlockStore,
    target: Resolved,
    range_header: str | None,
    if_none_match: str | None,
    *,
    head: bool,
) -> Response:
    text = cid_to_str(target.cid)
    if is_directory(target.cid, target.block):
        entries = directory_entries(target.cid, target.block, store.get)
        listing = [
            {"name": name, "cid": cid_to_str(cid), "size": size}
            for name, (cid, size) in sorted(entries.items())
        ]
        return JSONResponse({"cid": text, "type": "directory", "entries": listing})
    size = file_size(target.cid, target.block)
    headers = _headers(f'"{text}"', "application/octet-stream")
    headers["accept-ranges"] = "bytes"
    if _etag_matches(headers["etag"], if_none_match):
        return Response(status_code=304, headers=headers)
    try:
        ranges = parse_range(range_header, size)
    except RangeNotSatisfiable as exc:
        reply = error_response(416, f"Range not satisfiable: {exc}")
        reply.headers["content-range"] = f"bytes */{size}"
        return reply
    start, stop, status = 0, size, 200
    if ranges is not None and len(ranges) == 1:  # several ranges: the whole file, as allowed
        start, stop, status = ranges[0].start, ranges[0].end + 1, 206
        headers["content-range"] = ranges[0].content_range(size)
    headers["content-length"] = str(stop - start)
    # Before the status line, as /piece does: a changed or missing file is a 409/410 reply, not
    # a transfer cut after a 200.
    store.check_sources(file_leaves(store, target.cid, target.block, start, stop))
    if head:
        return Response(status_code=status, headers=headers)
    chunks = file_bytes(store, target.cid, target.block, start, stop)
    return StreamingResponse(_logged(chunks, text), status_code=status, headers=headers)


def _logged(chunks: Iterator[bytes], cid: str) -> Iterator[bytes]:
    """The chunks; an error after the reply started is logged before it ends the connection."""
    try:
        yield from chunks
    except Exception as exc:
        log_event(
            log,
            "provider.gateway_abort",
            logging.ERROR,
            cid=cid,
            error=f"{type(exc).__name__}: {exc}",
        )
        raise


def _install_error_handlers(app: FastAPI) -> None:
    async def bad_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayRequestError)
        return error_response(400, str(exc), errors=[{"field": exc.field, "message": str(exc)}])

    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(404, str(exc))

    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BlockUnavailable)
        return error_response(exc.status, str(exc), {"file": exc.file} if exc.file else None)

    async def bad_dag(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(409, str(exc))

    app.add_exception_handler(GatewayRequestError, bad_request)
    app.add_exception_handler(BlockNotFound, not_found)
    app.add_exception_handler(PathNotFound, not_found)
    app.add_exception_handler(BlockUnavailable, unavailable)
    app.add_exception_handler(BadDag, bad_dag)
