"""The ASGI zero-copy send extension (`http.response.zerocopysend`) on top of uvicorn.

uvicorn does not implement the extension, and Starlette's FileResponse copies every chunk through
a thread and the event loop. This middleware, the outermost layer of the provider app, offers the
extension when the connection is a plain-TCP uvicorn httptools connection, and serves each
zero-copy message with `os.sendfile` from the file straight to the socket:

- the headers uvicorn already queued are flushed first (sendfile bypasses the transport);
- the socket descriptor is duplicated, so the transport closing it meanwhile (the client went
  away) cannot make the copy write to a recycled descriptor number;
- the copy runs in a thread that waits for the socket to drain with poll(), since the socket is
  non-blocking and belongs to the event loop;
- uvicorn's own count of body bytes still owed under Content-Length is reduced by the bytes sent,
  so the response completes normally and the connection stays usable for keep-alive.

Anything else (another server, TLS, chunked responses) gets no extension, and responses fall back
to ordinary body messages.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import threading
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dataset_worker.logs import log_event

log = logging.getLogger(__name__)

EXTENSION = "http.response.zerocopysend"
STALL_SECONDS = 60.0  # a client that takes nothing for this long is dropped
_POLL_SLICE_MS = 500  # how often a waiting copy looks at the stop flag
_FLUSH_WAIT_SECONDS = 30.0
_SENDERS = anyio.CapacityLimiter(256)  # blocking copies in flight, beside anyio's default pool
_GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN)


class ClientGone(Exception):
    """The client closed the connection or stopped reading."""


class ZeroCopySendMiddleware:
    """Offer and implement `http.response.zerocopysend` on uvicorn httptools connections."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cycle = _uvicorn_cycle(scope, send)
        if cycle is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("extensions", {})[EXTENSION] = {}
        state = _Connection(cycle, send)
        await self.app(scope, receive, state.send)


def _uvicorn_cycle(scope: Scope, send: Send) -> Any:
    """uvicorn's httptools request cycle behind `send`, if it is one we can copy around."""
    if scope["type"] != "http" or scope.get("http_version") not in ("1.0", "1.1"):
        return None
    cycle = getattr(send, "__self__", None)
    if type(cycle).__module__ != "uvicorn.protocols.http.httptools_impl":
        return None
    transport = getattr(cycle, "transport", None)
    if not isinstance(getattr(cycle, "expected_content_length", None), int) or transport is None:
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None
    if transport.get_extra_info("socket") is None:
        return None
    return cycle


class _Connection:
    """The send channel of one request, with zero-copy messages turned into sendfile calls."""

    def __init__(self, cycle: Any, send: Send) -> None:
        self._cycle = cycle
        self._send = send
        self._gone = False

    async def send(self, message: Message) -> None:
        if message["type"] != EXTENSION:
            if not self._gone:
                await self._send(message)
            return
        if self._gone:
            return
        count = int(message["count"])
        cycle = self._cycle
        if cycle.chunked_encoding is not False or count > cycle.expected_content_length:
            raise RuntimeError("zero-copy send needs a Content-Length that covers the bytes")
        try:
            await self._flush()
            await _copy(cycle.transport, message["file"].fileno(), int(message["offset"]), count)
        except ClientGone:
            self._drop()
            return
        except OSError as exc:  # the file shrank under us: end the response short, loudly
            log_event(log, "provider.sendfile_failed", logging.ERROR, error=str(exc))
            self._drop()
            return
        cycle.expected_content_length -= count
        if not message.get("more_body", False):
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    def _drop(self) -> None:
        """Close the connection: the client sees a body shorter than Content-Length."""
        self._gone = True
        self._cycle.transport.close()

    async def _flush(self) -> None:
        """Wait until the bytes queued in the transport (the headers) are on the socket."""
        transport = self._cycle.transport
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _FLUSH_WAIT_SECONDS
        if transport.is_closing():
            raise ClientGone()
        while transport.get_write_buffer_size():
            if transport.is_closing() or loop.time() > deadline:
                raise ClientGone()
            await asyncio.sleep(0.001)


async def _copy(transport: Any, file_fd: int, offset: int, count: int) -> None:
    """sendfile `count` bytes from `offset` of `file_fd` to the transport's socket."""
    sock_fd = os.dup(transport.get_extra_info("socket").fileno())
    try:
        in_fd = os.dup(file_fd)
    except BaseException:
        os.close(sock_fd)
        raise
    stop = threading.Event()
    try:
        await anyio.to_thread.run_sync(
            _blocking_copy, sock_fd, in_fd, offset, count, stop,
            limiter=_SENDERS, abandon_on_cancel=True,
        )  # fmt: skip
    finally:
        stop.set()  # an abandoned (cancelled) copy ends at its next poll slice


def _blocking_copy(
    sock_fd: int, in_fd: int, offset: int, count: int, stop: threading.Event
) -> None:
    """The copy loop; owns (and closes) both descriptors."""
    try:
        poller = select.poll()
        poller.register(sock_fd, select.POLLOUT)
        idle_ms = 0
        while count > 0:
            if stop.is_set():
                raise ClientGone()
            try:
                sent = os.sendfile(sock_fd, in_fd, offset, count)
            except BlockingIOError:
                if poller.poll(_POLL_SLICE_MS):
                    idle_ms = 0
                else:
                    idle_ms += _POLL_SLICE_MS
                    if idle_ms >= STALL_SECONDS * 1000:
                        log_event(log, "provider.client_stalled", logging.WARNING)
                        raise ClientGone() from None
                continue
            except OSError as exc:
                if exc.errno in _GONE:
                    raise ClientGone() from None
                raise
            if sent == 0:
                raise OSError(errno.EIO, f"the file ended {count} bytes early (was it truncated?)")
            offset += sent
            count -= sent
    finally:
        os.close(sock_fd)
        os.close(in_fd)
