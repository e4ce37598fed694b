"""The preparation card's Rescan button queues the re-planning scan (POST …/rescan).

Screenshots of the flow at 1280x800 and 390x844 are saved under the test's tmp dir (copies are
in docs/screenshots/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import DESKTOP, PHONE, Server

pytestmark = pytest.mark.browser

NAME = "card-rescan"


def test_the_rescan_button_queues_the_scan(signed_in: Page, server: Server, tmp_path: Path) -> None:
    source = server.data_dir / NAME
    source.mkdir()
    (source / "a.txt").write_text("a\n")
    body = {"name": NAME, "source": str(source), "output": str(source) + "-cars", "noAuto": True}
    assert server.api("POST", "/api/preparations", json=body).status_code == 201
    card = signed_in.locator(f"li.prep[data-name='{NAME}']")
    expect(card).to_be_visible()

    card.get_by_role("button", name="Rescan").click()
    expect(card.locator(".card-message")).to_contain_text("Rescan queued (job")
    signed_in.set_viewport_size(DESKTOP)
    card.scroll_into_view_if_needed()
    signed_in.screenshot(path=str(tmp_path / "rescan-desktop.png"))
    signed_in.set_viewport_size(PHONE)
    card.get_by_role("button", name="Rescan").scroll_into_view_if_needed()
    expect(card.get_by_role("button", name="Rescan")).to_be_in_viewport()
    signed_in.screenshot(path=str(tmp_path / "rescan-phone.png"))
    signed_in.set_viewport_size(DESKTOP)
    jobs = server.api("GET", f"/api/dataset-worker/jobs?preparation={NAME}&type=scan").json()[
        "jobs"
    ]
    assert [job["type"] for job in jobs] == ["scan"]

    # Queued already: the same refusal as a second start-scan (409), shown on the card.
    card.get_by_role("button", name="Rescan").click()
    expect(card.locator(".card-message")).to_contain_text("already queued")
