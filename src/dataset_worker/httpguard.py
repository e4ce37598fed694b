"""Slow and oversized requests cannot hold a server's connections: the uvicorn protocol both
servers (the admin API and the content provider) run on.

uvicorn bounds only the idle time between requests (`timeout_keep_alive`). A client that opens
a connection and sends nothing, or sends a request head a byte at a time, or announces a body and
never sends it, kept its connection (and the app task waiting for the body) for as long as it
liked. This protocol adds:

- a header timeout: the request head must be complete within `header_timeout` seconds of the
  connection opening or of the request's first byte (408, then the connection is closed);
- a body timeout: no more than `body_timeout` seconds without a body byte while a body is due
  (the connection is closed; the app sees a disconnect);
- a head size limit: more than MAX_HEAD bytes before the head is complete is refused (431).

The number of connections and tasks at once is uvicorn's `limit_concurrency` (503 past it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
MAX_HEAD = 64 << 10  # bytes of request line and headers
MAX_CONNECTIONS = 1000  # uvicorn's limit_concurrency for both servers

_TIMEOUT_REPLY = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TOO_LARGE_REPLY = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def guarded_protocol(
    header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT
) -> type[asyncio.Protocol]:
    """The protocol class to pass as uvicorn's `http` option."""

    class Guarded(GuardedHttpToolsProtocol):
        HEADER_TIMEOUT = header_timeout
        BODY_TIMEOUT = body_timeout

    return Guarded


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body timeouts and a head size limit."""

    HEADER_TIMEOUT = HEADER_TIMEOUT
    BODY_TIMEOUT = BODY_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0

    def _arm(self, seconds: float, reply: bytes | None) -> None:
        self._disarm()
        self._guard = self.loop.call_later(seconds, self._expired, reply)

    def _disarm(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None

    def _expired(self, reply: bytes | None) -> None:
        self._guard = None
        if self.transport.is_closing():
            return
        if reply is not None:
            self.transport.write(reply)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.HEADER_TIMEOUT, _TIMEOUT_REPLY)  # a connection that never sends a byte

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still no complete head after MAX_HEAD bytes (one read may carry a head and a body).
        if self._in_head and self._head_bytes > MAX_HEAD and not self.transport.is_closing():
            self._disarm()
            self.transport.write(_TOO_LARGE_REPLY)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.HEADER_TIMEOUT, _TIMEOUT_REPLY)  # from the request's first byte

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self.BODY_TIMEOUT, None)  # until the body (if any) is complete
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm(self.BODY_TIMEOUT, None)  # an idle timeout: each chunk restarts it
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head, self._head_bytes = True, 0  # what comes next is the next request's head
        super().on_message_complete()
