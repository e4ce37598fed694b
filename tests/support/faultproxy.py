"""A small HTTP-aware TCP proxy between an S3 client and server that injects network faults.

Each client connection carries one request: the proxy reads it, forwards it on a new upstream
connection (asking the server to close after the reply) and relays the reply. Armed faults
apply to the next matching requests:

- `reset`: relay the reply head and `after` bytes of its body, then reset the connection;
- `stall`: relay the head and `after` body bytes, then send nothing for `seconds`, then close;
- `slowdown`: answer 503 SlowDown without contacting the server.

`latency` (seconds, default 0) delays every request before it is forwarded, like a distant
server (bench/s3listing.py).

`injected` counts the faults really applied, so a test can check its faults happened.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass(frozen=True)
class Request:
    """The parts of a request a fault can match on."""

    method: str
    path: str
    headers: dict[str, str]

    @property
    def is_object_read(self) -> bool:
        """A ranged GET of an object (what range reads send)."""
        return self.method == "GET" and "range" in self.headers


@dataclass
class Fault:
    """One armed fault: its kind, how many requests it still applies to, and its filter."""

    kind: str
    remaining: int
    match: Callable[[Request], bool]
    after: int = 64 * 1024
    seconds: float = 0.0


class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to `upstream` ("host", port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self.seen: list[Request] = []  # every request, in arrival order
        self.latency = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """The URL clients should use."""
        return f"http://127.0.0.1:{self.port}"

    def arm(self, fault: Fault) -> None:
        """Apply `fault` to the next `fault.remaining` matching requests."""
        with self._lock:
            self._faults.append(fault)

    def close(self) -> None:
        """Stop accepting connections."""
        self._closed.set()
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=5)

    def _take(self, request: Request) -> Fault | None:
        with self._lock:
            self.requests += 1
            self.seen.append(request)
            for fault in self._faults:
                if fault.remaining > 0 and fault.match(request):
                    fault.remaining -= 1
                    self.injected[fault.kind] += 1
                    return fault
        return None

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            try:
                raw, request = _read_request(client)
            except (OSError, ValueError):
                return
            fault = self._take(request)
            if fault is not None and fault.kind == "slowdown":
                client.sendall(
                    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                    + f"Content-Length: {len(SLOWDOWN_BODY)}\r\n".encode()
                    + b"Connection: close\r\n\r\n"
                    + SLOWDOWN_BODY
                )
                return
            if self.latency:
                time.sleep(self.latency)  # the injected round trip, not a wait on an event
            with suppress(OSError):
                self._relay(client, raw, fault)

    def _relay(self, client: socket.socket, raw: bytes, fault: Fault | None) -> None:
        with socket.create_connection(self.upstream, timeout=30) as upstream:
            upstream.sendall(raw)
            head = b""
            body_sent = 0
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    return
                if fault is None:
                    client.sendall(chunk)
                    continue
                if b"\r\n\r\n" not in head:
                    head += chunk
                    if b"\r\n\r\n" not in head:
                        continue
                    head_part, _, chunk = head.partition(b"\r\n\r\n")
                    client.sendall(head_part + b"\r\n\r\n")
                room = fault.after - body_sent
                client.sendall(chunk[:room])
                body_sent += min(len(chunk), max(room, 0))
                if body_sent >= fault.after:
                    self._break(client, fault)
                    return

    def _break(self, client: socket.socket, fault: Fault) -> None:
        if fault.kind == "stall":
            self._closed.wait(fault.seconds)  # the fault itself: silence past the read timeout
            return
        # SO_LINGER 0: close() sends a TCP reset instead of a clean end of stream.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _read_request(client: socket.socket) -> tuple[bytes, Request]:
    """One whole request (head and Content-Length body), with Connection: close added."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            raise ValueError("connection closed before a request")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = client.recv(min(1 << 20, length - len(body)))
        if not chunk:
            raise ValueError("connection closed inside a request body")
        body += chunk
    kept = [line for line in lines if not line.lower().startswith("connection:")]
    raw = ("\r\n".join(kept) + "\r\nConnection: close\r\n\r\n").encode("latin-1") + body
    return raw, Request(method, path, headers)


@contextmanager
def fault_proxy(endpoint: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of `endpoint` (http://host:port), closed afterwards."""
    host, _, port = endpoint.removeprefix("http://").partition(":")
    proxy = FaultProxy((host, int(port)))
    try:
        yield proxy
    finally:
        proxy.close()
