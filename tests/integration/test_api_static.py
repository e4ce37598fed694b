"""The web page's files at /: served when present, a clean JSON 404 when the folder is empty or
missing (never a 500), and never shadowing the API. (In process, through httpx's ASGI transport.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from dataset_worker.api.app import create_app
from dataset_worker.config import Settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(state_dir=tmp_path / "state", database_url=database_url)


def get_all(settings: Settings, web_dir: Path, *paths: str) -> list[httpx.Response]:
    app = create_app(settings, token="static-test-token-0123", web_dir=web_dir)

    async def fetch() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(path) for path in paths]

    try:
        return asyncio.run(fetch())
    finally:
        app.state.services.db.dispose()


def test_files_of_the_web_folder_are_served(settings: Settings, tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>admin</title>")
    (web / "app.js").write_text("export {}")
    page, script, api, missing = get_all(
        settings, web, "/", "/app.js", "/api/dataset-worker/status", "/nope.css"
    )
    assert page.status_code == 200 and "<title>admin</title>" in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert api.status_code == 401  # the API is matched before the files
    assert missing.status_code == 404 and missing.json()["error"]


@pytest.mark.parametrize("create", [True, False], ids=["empty", "missing"])
def test_an_empty_or_missing_web_folder_is_a_clean_404(
    settings: Settings, tmp_path: Path, create: bool
) -> None:
    web = tmp_path / "web"
    if create:
        web.mkdir()
    root, health = get_all(settings, web, "/", "/healthz")
    assert root.status_code == 404
    assert root.json()["error"].startswith("No such endpoint or file")
    assert health.status_code == 200


def test_every_reply_carries_the_security_headers(settings: Settings, tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>admin</title>")
    replies = get_all(settings, web, "/", "/api/dataset-worker/status", "/nope.css", "/healthz")
    page_policy = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    for reply in replies:
        assert reply.headers["content-security-policy"] == page_policy, reply.url
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
    (docs,) = get_all(settings, web, "/docs")
    # Swagger UI starts with an inline script: the docs page keeps the rest of the policy.
    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == (
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    assert docs.headers["x-content-type-options"] == "nosniff"
