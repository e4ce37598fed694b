"""Through a real server: request bodies are capped at 1 MiB (413), and /docs and /redoc load
every asset from the server itself (they work offline)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from dataset_worker.api.bodylimit import MAX_BODY_BYTES
from tests.integration.api_support import AdminServer

JSON = {"Content-Type": "application/json"}
TOO_LARGE = "request body too large: at most 1 MiB (1048576 bytes) is accepted"
POSTS = (
    "/api/preparations",
    "/api/dataset-worker/start",
    "/api/dataset-worker/stop",
    "/api/preparations/demo/start-scan",
)


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length: httpx sends a generator with chunked transfer encoding."""
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_bodies_over_1_mib_get_a_413_before_they_are_read(admin_server: AdminServer) -> None:
    client = admin_server.client()
    for path in POSTS:
        reply = client.post(path, content=b"x" * (MAX_BODY_BYTES + 1), headers=JSON)
        assert reply.status_code == 413, (path, reply.text)
        assert reply.json() == {"error": TOO_LARGE, "detail": {"limit": MAX_BODY_BYTES}}
    huge = client.post("/api/preparations", content=b"x" * (60 << 20), headers=JSON)
    assert huge.status_code == 413 and huge.json()["error"] == TOO_LARGE
    # The server is still there, and the worker was never started by any of it.
    assert client.get("/api/dataset-worker/status").json()["running"] is False


def test_a_streamed_body_is_counted_and_refused_once_it_passes_1_mib(
    admin_server: AdminServer,
) -> None:
    client = admin_server.client()
    reply = client.post("/api/preparations", content=_chunks(MAX_BODY_BYTES + 1), headers=JSON)
    assert reply.request.headers.get("transfer-encoding") == "chunked"
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"] == TOO_LARGE
    assert client.get("/api/preparations").json() == []


def test_a_body_of_exactly_1_mib_is_still_read(admin_server: AdminServer) -> None:
    client = admin_server.client()
    body = {"name": "p", "source": "/nonexistent", "pad": ""}
    body["pad"] = "x" * (MAX_BODY_BYTES - len(json.dumps(body).encode()))
    content = json.dumps(body).encode()
    assert len(content) == MAX_BODY_BYTES
    reply = client.post("/api/preparations", content=content, headers=JSON)
    assert reply.status_code == 400, reply.text  # parsed: an unknown field, not too large
    assert "pad is not a known field" in reply.json()["error"]
    streamed = client.post("/api/preparations", content=_chunks(MAX_BODY_BYTES), headers=JSON)
    assert streamed.status_code == 400  # blank JSON: read whole, then refused as invalid


def test_without_the_token_the_reply_is_401_whatever_the_size(admin_server: AdminServer) -> None:
    anonymous = admin_server.client(None)
    reply = anonymous.post("/api/preparations", content=b"x" * (2 << 20), headers=JSON)
    assert reply.status_code == 401


ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


def test_docs_and_redoc_load_only_local_assets(admin_server: AdminServer) -> None:
    anonymous = admin_server.client(None)
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    fetched: set[str] = set()
    for page in ("/docs", "/redoc"):
        html = anonymous.get(page)
        assert html.status_code == 200
        assert "http://" not in html.text and "https://" not in html.text, html.text
        urls = [a or b for a, b in ASSET.findall(html.text)]
        scripts = [url for url in urls if url.endswith(".js")]
        assert scripts, html.text
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            reply = anonymous.get(url)
            assert reply.status_code == 200, url
            suffix = url[url.rfind(".") :]
            if suffix in kinds:
                assert kinds[suffix] in reply.headers["content-type"], url
                assert len(reply.content) > 1000, url
                fetched.add(suffix)
    assert fetched == {".js", ".css", ".png"}
