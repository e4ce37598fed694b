"""GET and HEAD /piece/{pieceCid} answered before FastAPI routing, in the common case.

A storage provider fetching a piece sends many range requests for it. For a piece whose rows are
cached and whose file opens fine, the router, parameter validation and a thread hop cost more than
the reply itself, so this layer answers at once. Anything else (a bad id, a piece looked up for
the first time, an unknown or unavailable piece) goes on to the FastAPI route, which gives the same
answer, or the documented error.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from dataset_worker.provider.piececid import InvalidPieceCid, parse_piece_ref
from dataset_worker.provider.pieces import (
    CheckedPieceReader,
    PieceCatalog,
    PieceNotFound,
    PieceUnavailable,
)
from dataset_worker.provider.reply import piece_reply

PREFIX = "/piece/"
_HEADERS = (b"range", b"if-none-match", b"if-modified-since", b"if-range")


class PieceFastPath:
    """Serve cached pieces without the router; pass every other request on."""

    def __init__(self, app: ASGIApp, catalog: PieceCatalog) -> None:
        self.app = app
        self.catalog = catalog

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            if path.startswith(PREFIX) and "/" not in path[len(PREFIX) :]:
                response = self._reply(scope, path[len(PREFIX) :])
                if response is not None:
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _reply(self, scope: Scope, text: str) -> Response | None:
        try:
            ref = parse_piece_ref(text)
        except InvalidPieceCid:
            return None
        records = self.catalog.cached_records(ref.v1)
        if records is None:
            return None
        records = ref.matching(records)
        try:
            # Opening a local file is a few microseconds: no need to leave the event loop.
            record, reader = self.catalog.open_records(records)
        except (PieceNotFound, PieceUnavailable):
            return None
        if isinstance(reader, CheckedPieceReader):
            # Its checks read the database and stat source files: not in the event loop.
            reader.close()
            return None
        wanted = {name: None for name in _HEADERS}
        for name, value in scope["headers"]:
            if name in wanted:
                wanted[name] = value.decode("latin-1")
        try:
            return piece_reply(scope["method"], record, reader, *wanted.values())
        except BaseException:
            reader.close()
            raise
