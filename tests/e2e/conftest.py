"""Fixtures for the admin page tests: a real `dataset-worker serve` (which starts the real worker)
and headless Chromium driven by Playwright.

One server per test module (its own state dir, SQLite database and free port), so a module's
tests see only the preparations, workers and runs they made themselves, never another module's
(tests of different modules run in parallel under xdist); one browser with a fresh profile, and
a new tab per test, so each test starts signed out (the token lives in the tab's session
storage). Tests that start the worker stop it again, so every test begins with no worker
running.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, ViewportSize, expect, sync_playwright

from dataset_worker.config import ENV_ADMIN_TOKEN, sqlite_url
from tests.conftest import skip_or_fail
from tests.support.ports import free_port
from tests.support.wait import wait_until

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps trying to reach hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
SERVER_START_SECONDS = 30.0
WORK_MS = 60_000  # waits on the worker's jobs, with room for a slow CI machine

# Auto-waiting assertions: generous on a busy 2-core machine, instant when things are on time.
expect.set_options(timeout=15_000)


@dataclass
class Server:
    """A running admin server: its base URL, admin token and folders."""

    url: str
    token: str
    state_dir: Path
    data_dir: Path
    log_path: Path

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API directly (to set up or cross-check what the page shows)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as client:
            return client.request(method, path, **kwargs)

    def stop_worker(self) -> None:
        """Stop the worker if one runs (404 means none did)."""
        reply = self.api("POST", "/api/dataset-worker/stop", params={"timeout": "5"})
        assert reply.status_code in (200, 404), reply.text


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"the server exited with {process.returncode}:\n{log_path.read_text()}"
            )
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        return False

    wait_until(healthy, SERVER_START_SECONDS, f"/healthz of the server (log: {log_path})", 0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python -m dataset_worker … serve` on a free port with a known admin token."""
    base = tmp_path_factory.mktemp("e2e-server")
    state_dir, data_dir = base / "state", base / "data"
    state_dir.mkdir()
    data_dir.mkdir()
    token = secrets.token_urlsafe(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = base / "server.log"
    command = [
        sys.executable,
        "-m",
        "dataset_worker",
        "--state-dir",
        str(state_dir),
        "--database-url",
        sqlite_url(state_dir / "dataset-worker.db"),
        "serve",
        "--port",
        str(port),
        "--stop-worker-on-exit",  # no worker outlives a failed test
    ]
    env = {**os.environ, ENV_ADMIN_TOKEN: token}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, process, log_path)
            running = Server(url, token, state_dir, data_dir, log_path)
            yield running
            running.stop_worker()
        finally:
            # SIGTERM: the server stops its worker (grace period), then exits.
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="package")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Headless Debian Chromium with a fresh profile (no browser download)."""
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (Debian package chromium; `make system-deps`)")

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=DESKTOP,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Iterator[Page]:
    """A new tab (empty session storage: signed out). Page errors fail the test."""
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.set_default_timeout(15_000)
    yield tab
    tab.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of the page under tests/e2e/screenshots/ (git-ignored) for people to look at."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # The sticky top bar would be drawn mid-page in a full-page image: let it scroll away. Set
    # through the CSSOM: the page's content security policy blocks the <style> element that
    # Playwright's `style` option would add.
    page.evaluate(f"() => {_TOPBARS}.forEach((bar) => bar.style.position = 'static')")
    try:
        page.screenshot(path=str(path), full_page=full_page)
    finally:
        page.evaluate(f"() => {_TOPBARS}.forEach((bar) => bar.style.removeProperty('position'))")
    return path


_TOPBARS = "document.querySelectorAll('.topbar')"


def sign_in(page: Page, server: Server) -> None:
    """Open the page and sign in with the admin token, with the keyboard."""
    page.goto(server.url + "/")
    token = page.get_by_label("Admin token")
    token.fill(server.token)
    token.press("Enter")
    expect(page.get_by_role("heading", name="Worker", exact=True)).to_be_visible()


@pytest.fixture
def signed_in(page: Page, server: Server) -> Iterator[Page]:
    """The page, signed in; the worker is stopped again after the test."""
    sign_in(page, server)
    yield page
    server.stop_worker()


def submit_start(page: Page) -> None:
    """Press the start form's button (the form keeps whatever fields the test filled in)."""
    page.locator("#start-form").get_by_role("button", name="Start worker").click()
