"""The admin page under its content security policy, in headless Chromium: the server sends the
policy, and loading and using the page (sign-in, cards, the file browser, the forms) reports no
violation, neither as a `securitypolicyviolation` event nor on the console."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from dataset_worker.config import sqlite_url
from dataset_worker.db import Database
from dataset_worker.httpedge.headers import PAGE_POLICY
from tests.e2e.conftest import Server, screenshot, sign_in
from tests.support.preps import packed_preparation

pytestmark = pytest.mark.browser

# Runs before any script of the page: every violation the browser reports is kept.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""


@pytest.fixture
def db(server: Server) -> Iterator[Database]:
    database = Database(sqlite_url(server.state_dir / "dataset-worker.db"))
    yield database
    database.dispose()


def test_the_page_runs_under_its_policy_without_violations(
    page: Page, server: Server, db: Database
) -> None:
    console: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            console.append(message.text)

    page.on("console", keep)
    page.add_init_script(RECORD_VIOLATIONS)
    reply = page.goto(server.url + "/")
    assert reply is not None and reply.status == 200
    assert reply.headers["content-security-policy"] == PAGE_POLICY
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"

    sign_in(page, server)
    packed_preparation(db, server.data_dir, "csp-check", {"a.txt": b"a\n", "d/b.bin": 5000})
    card = page.locator("li.prep[data-name='csp-check']")
    expect(card).to_be_visible()
    card.get_by_role("button", name="Browse files").click()
    expect(card.locator(".explore-table tbody tr").first).to_be_visible()
    page.get_by_role("button", name="New preparation").click()
    expect(page.locator("#prep-form")).to_be_visible()
    page.get_by_role("button", name="New storage").click()
    expect(page.locator("#storage-form")).to_be_visible()
    # The suite's screenshots work under the policy too (and let the sticky top bar scroll away).
    screenshot(page, "csp-signed-in")
    sticky = "getComputedStyle(document.querySelector('.topbar')).position"
    assert page.evaluate(sticky) == "sticky"  # put back after the screenshot
    violations = page.evaluate("window.__violations")
    page.reload()  # a second load, signed in, with the page's state restored
    expect(page.get_by_role("heading", name="Worker", exact=True)).to_be_visible()
    expect(card).to_be_visible()
    violations += page.evaluate("window.__violations")

    assert violations == []
    assert console == []

    # The listener does see a violation: an image from a data: URL is not the page's own.
    page.evaluate(
        """() => { const image = new Image();
        image.src = "data:image/gif;base64,R0lGODlhAQABAAAAACw=";
        document.body.append(image); }"""
    )
    page.wait_for_function("window.__violations.length > 0")
    assert page.evaluate("window.__violations")[0].startswith("img-src blocked data")
    server.stop_worker()
