"""Signing in to the admin page with the admin token."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import PHONE, Server, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_a_wrong_token_is_refused_with_a_clear_message(page: Page, server: Server) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator("#token-error")).to_contain_text("refused this token")
    expect(page.get_by_label("Admin token")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('dataset-worker.token')") is None
    screenshot(page, "signin-refused")
    page.set_viewport_size(PHONE)
    screenshot(page, "signin-refused-phone")


def test_an_empty_token_asks_for_one(page: Page, server: Server) -> None:
    page.goto(server.url + "/")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#token-error")).to_have_text("Enter the admin token.")


def test_sign_in_survives_a_reload_and_sign_out_forgets_the_token(
    page: Page, server: Server
) -> None:
    sign_in(page, server)
    expect(page.locator("#worker-state")).to_have_text(re.compile("Running|Stopped"))

    page.reload()
    expect(page.get_by_role("heading", name="Worker", exact=True)).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Admin token")).to_be_visible()
    expect(page.get_by_label("Admin token")).to_be_focused()
    assert page.evaluate("sessionStorage.getItem('dataset-worker.token')") is None


def test_a_token_the_server_stops_accepting_signs_the_page_out(page: Page, server: Server) -> None:
    sign_in(page, server)
    page.evaluate("sessionStorage.setItem('dataset-worker.token', 'revoked')")
    # The next poll (every 2-3 s) is refused; the page returns to the sign-in form by itself.
    expect(page.locator("#token-error")).to_contain_text("no longer accepts")
    expect(page.locator("#app")).to_be_hidden()
