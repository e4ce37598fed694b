"""On a phone (390x844): signing in leaves the page at the top, and nothing is wider than the
screen, not even the jobs filter offering a 64-character preparation name."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import PHONE, Server, screenshot, sign_in

pytestmark = pytest.mark.browser

LONG_NAME = "phone_layout_" + "x" * 51  # the longest name allowed, and no place to break it


def page_width(page: Page) -> int:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width


def test_a_phone_signs_in_at_the_top_and_nothing_overflows(page: Page, server: Server) -> None:
    assert len(LONG_NAME) == 64
    source = server.data_dir / "phone-source"
    source.mkdir()
    (source / "a.txt").write_text("a\n")
    body = {"name": LONG_NAME, "source": str(source), "output": str(source) + "-cars"}
    assert server.api("POST", "/api/preparations", json=body).status_code == 201

    page.set_viewport_size(PHONE)
    sign_in(page, server)
    expect(page.locator("#jobs-prep option", has_text=LONG_NAME)).to_have_count(1)
    expect(page.locator(f"li.prep[data-name='{LONG_NAME}'] h3")).to_be_visible()
    expect(page.locator("#main")).to_be_focused()  # keyboard users still start at the content
    assert page.evaluate("window.scrollY") == 0
    assert page_width(page) <= PHONE["width"]
    screenshot(page, "phone-signed-in", full_page=False)

    page.get_by_label("Preparation", exact=True).select_option(LONG_NAME)
    page.locator("#jobs").scroll_into_view_if_needed()
    assert page_width(page) <= PHONE["width"]
    screenshot(page, "phone-jobs-filter", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 800})
    screenshot(page, "desktop-long-name", full_page=False)
