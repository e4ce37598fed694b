"""The create form's "No file hash" checkbox, and the card's file-hash fact, in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, screenshot

pytestmark = pytest.mark.browser


def _create(page: Page, server: Server, name: str, *, no_file_hash: bool) -> None:
    source = server.data_dir / f"{name}-source"
    source.mkdir(parents=True, exist_ok=True)
    (source / "a.txt").write_text("a")
    page.get_by_role("button", name="New preparation").click()
    form = page.locator("#prep-form")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Source folder").fill(str(source))
    form.get_by_label("Output folder (CAR files)").fill(str(server.data_dir / f"{name}-cars"))
    checkbox = form.get_by_label("No file hash", exact=False)
    expect(checkbox).not_to_be_checked()
    if no_file_hash:
        checkbox.check()
    form.get_by_role("button", name="Create preparation").click()
    expect(form).to_be_hidden()


def test_the_form_turns_file_hashing_off_and_the_card_says_so(
    signed_in: Page, server: Server
) -> None:
    page = signed_in
    _create(page, server, "hash-off", no_file_hash=True)
    _create(page, server, "hash-on", no_file_hash=False)

    preps = {p["name"]: p for p in server.api("GET", "/api/preparations").json()}
    assert preps["hash-off"]["fileHash"] is False
    assert preps["hash-on"]["fileHash"] is True
    off = page.locator("li.prep[data-name='hash-off'] [data-fact='File hash'] dd")
    on = page.locator("li.prep[data-name='hash-on'] [data-fact='File hash'] dd")
    expect(off).to_have_text("off")
    expect(on).to_have_text("sha256")
    screenshot(page, "prep-file-hash-fact", full_page=False)
