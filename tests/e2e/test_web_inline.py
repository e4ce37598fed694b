"""The create form with an empty output makes an inline preparation, in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, screenshot

pytestmark = pytest.mark.browser


def test_an_empty_output_creates_an_inline_preparation(signed_in: Page, server: Server) -> None:
    page = signed_in
    source = server.data_dir / "inline-source"
    source.mkdir(parents=True, exist_ok=True)
    (source / "a.txt").write_text("a")
    page.get_by_role("button", name="New preparation").click()
    form = page.locator("#prep-form")
    form.get_by_label("Name").fill("inline-form")
    form.get_by_label("Source folder").fill(str(source))
    output = form.get_by_label("Output folder (CAR files)")
    expect(output).to_have_attribute("placeholder", "/data/cars (empty: inline, no CAR files)")
    output.fill("")
    form.get_by_role("button", name="Create preparation").click()
    expect(form).to_be_hidden()

    preps = {p["name"]: p for p in server.api("GET", "/api/preparations").json()}
    assert preps["inline-form"]["outputStorages"] == []
    card = page.locator("li.prep[data-name='inline-form']")
    expect(card).to_contain_text(f"{source} → inline")
    screenshot(page, "prep-inline-created", full_page=False)
