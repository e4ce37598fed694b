"""A piece server that misbehaves on purpose, for testing `fetch-piece` against hostile servers.

A real HTTP server on a loopback port (the standard library's threading server): HEAD and ranged
GET of `/piece/{cid}` over the bytes it is given, and optionally `/piece/metadata/{cid}` with the
sizes it is told to claim. `drip` sends range bodies one byte at a time with a pause between.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


@dataclass
class HostilePiece:
    """What the server serves and claims."""

    body: bytes
    metadata: dict[str, object] | None = None  # served as /piece/metadata/{cid} when given
    drip: float | None = None  # seconds between the bytes of a range body


@contextmanager
def hostile_server(piece: HostilePiece) -> Iterator[str]:
    """Serve `piece` on 127.0.0.1; yields the base URL, stops the server afterwards."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return  # keep the test output clean

        def _piece_headers(self, status: int, length: int) -> None:
            self.send_response(status)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", '"hostile"')
            self.send_header("Content-Length", str(length))

        def do_HEAD(self) -> None:
            self._piece_headers(200, len(piece.body))
            self.end_headers()

        def do_GET(self) -> None:
            if self.path.startswith("/piece/metadata/"):
                if piece.metadata is None:
                    self.send_error(404)
                    return
                data = json.dumps(piece.metadata).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            match = _RANGE.fullmatch(self.headers.get("Range", ""))
            if match is None:
                self.send_error(400)
                return
            first, last = int(match[1]), min(int(match[2]), len(piece.body) - 1)
            self._piece_headers(206, last + 1 - first)
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(piece.body)}")
            self.end_headers()
            data = piece.body[first : last + 1]
            try:
                if piece.drip is None:
                    self.wfile.write(data)
                    return
                for index in range(len(data)):
                    self.wfile.write(data[index : index + 1])
                    self.wfile.flush()
                    time.sleep(piece.drip)  # the point of this server: a slow drip
            except OSError:
                return  # the client gave up

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
