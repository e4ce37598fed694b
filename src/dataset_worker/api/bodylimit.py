"""A cap on request bodies: no API request needs more than a few kilobytes, so anything above
MAX_BODY_BYTES is refused with a 413 before it can fill the server's memory.

A declared Content-Length above the cap is refused before any of the body is read; a body
without one (chunked transfer) is counted as it streams in and refused once it passes the cap.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dataset_worker.httpedge.errors import error_response
from dataset_worker.sizes import format_size

MAX_BODY_BYTES = 1 << 20  # 1 MiB


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the cap.

    An HTTPException, so that FastAPI re-raises it from its body parsing (anything else would
    become a 400 there) and the app's error handler answers it in the usual body shape.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))


def too_large_message(limit: int) -> str:
    """The sentence of every 413."""
    return f"request body too large: at most {format_size(limit)} ({limit} bytes) is accepted"


class BodySizeLimitMiddleware:
    """Refuse HTTP request bodies larger than `limit` bytes with a 413 JSON error."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Read outside the router (so no error handler saw it): answer here, if we still can.
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, too_large_message(self.limit), {"limit": self.limit})
        # The rest of the body is not read: the connection cannot be reused.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses a malformed length itself
    return None
