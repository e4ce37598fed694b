"""The preparation card: its storage mode (inline or CAR files), each piece's URL on the content
provider (`serve --public-url`), and the Verify button with its watched result (clean, then
problems naming a corrupted CAR). A real server started with --public-url pointing at a real
`dataset-worker content-provider` on the same database: the URL the page shows serves the piece.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from dataset_worker.config import ENV_ADMIN_TOKEN, ENV_DATABASE_URL, sqlite_url
from tests.e2e.conftest import PHONE, WORK_MS, Server, _wait_healthy, screenshot
from tests.support.ports import free_port

pytestmark = pytest.mark.browser

CARS, INLINE = "verify-cars", "verify-inline"


def _start(
    command: list[str], env: dict[str, str], log_path: Path, url: str
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    _wait_healthy(url, process, log_path)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def provider_url() -> str:
    """Where the content provider of this module listens (chosen before the server starts)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provider_url: str) -> Iterator[Server]:
    """This module's own admin server, with --public-url (links by v2 piece CID), and the content
    provider it names."""
    base = tmp_path_factory.mktemp("e2e-verify")
    state_dir, data_dir = base / "state", base / "data"
    state_dir.mkdir()
    data_dir.mkdir()
    token = secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{free_port()}"
    database = sqlite_url(state_dir / "dataset-worker.db")
    serve = [
        sys.executable, "-m", "dataset_worker", "--state-dir", str(state_dir),
        "--database-url", database, "serve", "--port", url.rsplit(":", 1)[1],
        "--stop-worker-on-exit", "--public-url", provider_url + "/", "--piece-cid-version", "2",
    ]  # fmt: skip
    process = _start(serve, {**os.environ, ENV_ADMIN_TOKEN: token}, base / "server.log", url)
    provider_port = provider_url.rsplit(":", 1)[1]
    provide = [sys.executable, "-m", "dataset_worker", "content-provider", "--port", provider_port]
    env = {**os.environ, ENV_DATABASE_URL: database}
    try:
        provider = _start(provide, env, base / "provider.log", provider_url)
        try:
            running = Server(url, token, state_dir, data_dir, base / "server.log")
            yield running
            running.stop_worker()
        finally:
            _stop(provider)
    finally:
        _stop(process)


def _prepare(server: Server) -> Path:
    """Two preparations, one with CAR files and one inline, packed by the real worker; the
    folder of the CAR files."""
    for name, output in ((CARS, server.data_dir / "cars"), (INLINE, None)):
        source = server.data_dir / f"{name}-source"
        source.mkdir()
        (source / "a.txt").write_bytes(b"a" * 5000)
        (source / "b.bin").write_bytes(secrets.token_bytes(300_000))
        body = {"name": name, "source": str(source), **({"output": str(output)} if output else {})}
        reply = server.api("POST", "/api/preparations", json=body)
        assert reply.status_code == 201, reply.text
    reply = server.api("POST", "/api/dataset-worker/start", json={"minInterval": "200ms"})
    assert reply.status_code == 200, reply.text
    return server.data_dir / "cars"


def test_card_mode_piece_urls_and_verify(
    signed_in: Page, server: Server, provider_url: str
) -> None:
    page = signed_in
    cars = _prepare(server)
    card = page.locator(f"li.prep[data-name='{CARS}']")
    inline_card = page.locator(f"li.prep[data-name='{INLINE}']")
    expect(card.locator("[data-fact='Storage'] dd")).to_have_text("CAR files")
    expect(inline_card.locator("[data-fact='Storage'] dd")).to_have_text("inline (no CAR files)")
    expect(card.locator(".stage")).to_have_attribute("data-stage", "done", timeout=WORK_MS)

    card.get_by_role("button", name="Pieces").click()
    links = card.locator("a.piece-url")
    expect(links.first).to_be_visible()
    pieces = server.api("GET", f"/api/preparations/{CARS}/pieces").json()
    pieces = pieces if isinstance(pieces, list) else pieces["pieces"]
    hrefs = sorted(links.evaluate_all("(all) => all.map((a) => a.getAttribute('href'))"))
    # --piece-cid-version 2: the links name the v2 piece CID (FRC-0069), which the provider serves.
    v1_of = {p["pieceCidV2"]: p["pieceCid"] for p in pieces}
    assert hrefs == sorted(f"{provider_url}/piece/{v2}" for v2 in v1_of)
    served = httpx.get(hrefs[0], timeout=60)
    assert served.status_code == 200
    assert served.content == (cars / f"{v1_of[hrefs[0].rsplit('/', 1)[1]]}.car").read_bytes()
    expect(card.get_by_role("button", name="Copy piece URL").first).to_be_visible()

    result = card.locator(".verify-result")
    card.get_by_role("button", name="Verify").click()
    expect(result).to_have_attribute("data-state", "clean", timeout=WORK_MS)
    expect(result).to_contain_text("Verified clean")
    screenshot(page, "prep-card-verify-clean")

    car = max(cars.glob("*.car"), key=lambda path: path.stat().st_size)
    data = bytearray(car.read_bytes())
    data[len(data) // 2] ^= 0xFF
    car.write_bytes(bytes(data))
    card.get_by_role("button", name="Verify").click()
    expect(result).to_have_attribute("data-state", "problems", timeout=WORK_MS)
    expect(result.locator(".verify-problems")).to_contain_text(str(car))
    screenshot(page, "prep-card-verify-problems")
    page.set_viewport_size(PHONE)
    card.scroll_into_view_if_needed()
    screenshot(page, "prep-card-verify-problems-phone", full_page=False)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width}px)"
    page.set_viewport_size({"width": 1280, "height": 800})

    inline_card.get_by_role("button", name="Verify").click()
    inline_result = inline_card.locator(".verify-result")
    expect(inline_result).to_have_attribute("data-state", "clean", timeout=WORK_MS)
    expect(inline_result).to_contain_text("Verified clean")
