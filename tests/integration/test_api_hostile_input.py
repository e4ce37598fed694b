"""Hostile input to the admin API through a real server: NUL bytes and over-long paths, and
credentials in URLs, get a 400 naming the field (never a 500, never a stored secret)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.api_support import AdminServer, make_source

LONG_NAME = "n" * 300  # over NAME_MAX (255)
LONG_PATH = "/" + "/".join(["d" * 200] * 25)  # over PATH_MAX (4096)


def field_error(reply: Any, field: str) -> str:
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert [problem["field"] for problem in body["errors"]] == [field], body
    message: str = body["error"]
    assert field in message
    return message


# Each test sends all its cases to one server (a server per case cost 1.5 s): every case is
# refused, so none changes what the next one finds.
BAD_PREPARATION_PATHS = [
    ("source", "/tmp/a\x00b", "must not contain NUL characters"),
    ("output", "/tmp/out\x00", "must not contain NUL characters"),
    ("source", f"/tmp/{LONG_NAME}", "has a name of 300 bytes, the limit is 255"),
    ("output", LONG_PATH, "is too long"),
]


def test_preparation_paths_with_nul_or_too_long_are_400(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    client = admin_server.client()
    source = make_source(tmp_path / "src", {"a": 10})
    for field, value, rule in BAD_PREPARATION_PATHS:
        body = {"name": "p1", "source": str(source), "output": str(tmp_path / "out"), field: value}
        message = field_error(client.post("/api/preparations", json=body), field)
        assert rule in message, (field, message)
    assert client.get("/api/preparations").json() == []


BAD_STORAGE_PATHS = [
    ("/tmp/st\x00ore", "must not contain NUL characters"),
    (f"/tmp/{LONG_NAME}", "has a name of 300 bytes"),
    (LONG_PATH, "is too long"),
]


def test_storage_paths_with_nul_or_too_long_are_400(admin_server: AdminServer) -> None:
    client = admin_server.client()
    for url, rule in BAD_STORAGE_PATHS:
        message = field_error(client.post("/api/storages", json={"name": "st", "url": url}), "url")
        assert rule in message, (url[:40], message)


SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


CREDENTIALS_IN_URLS: list[tuple[dict[str, Any], str]] = [
    ({"url": f"s3://AKIAEXAMPLE:{SECRET}@bucket/prefix"}, "url"),
    (
        {"url": "s3://bucket/prefix", "endpoint": f"http://AKIAEXAMPLE:{SECRET}@127.0.0.1:9"},
        "endpoint",
    ),
    (
        {
            "url": "s3://bucket/prefix",
            "options": {"endpoint": f"http://AKIAEXAMPLE:{SECRET}@127.0.0.1:9"},
        },
        "options",
    ),
    ({"url": f"sftp://user:{SECRET}@127.0.0.1/data"}, "url"),
]


def test_credentials_in_url_userinfo_are_refused_and_never_echoed(
    admin_server: AdminServer,
) -> None:
    client = admin_server.client()
    for body, field in CREDENTIALS_IN_URLS:
        reply = client.post("/api/storages", json={"name": "creds", **body})
        assert reply.status_code == 400, reply.text
        errors = reply.json()["errors"]
        assert [problem["field"] for problem in errors] == [field]
        assert "must not carry" in reply.json()["error"]
        assert SECRET not in reply.text
    assert client.get("/api/storages").json() == []
    assert SECRET not in admin_server.log()
