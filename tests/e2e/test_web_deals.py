"""The Deals panel against the real server: deals made with the real client against the Curio
stand-in (pieces served by the real content provider), one rejected with Curio's reason, a
schedule paused from the page; at desktop and phone sizes, with screenshots."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from dataset_worker.config import sqlite_url
from dataset_worker.db import Database
from dataset_worker.deals.make import MakeRequest, make_deals
from dataset_worker.deals.runner import DealRunner
from dataset_worker.deals.tuning import Tuning
from tests.e2e.conftest import DESKTOP, PHONE, Server
from tests.integration.provider_support import start_provider
from tests.support.curio_sp import curio_sp
from tests.support.deal_keys import key_signer
from tests.support.deals import FILES
from tests.support.preps import packed_preparation

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def shot(page: Page, path: Path, *, full_page: bool = True) -> Path:
    page.screenshot(path=str(path), full_page=full_page, style=".topbar { position: static; }")
    assert path.stat().st_size > 10_000  # a real picture, not an empty page
    return path


def test_the_deals_panel(signed_in: Page, server: Server, tmp_path: Path) -> None:
    page = signed_in
    url = sqlite_url(server.state_dir / "dataset-worker.db")
    db = Database(url)
    name = f"e2e-deals-{uuid.uuid4().hex[:8]}"
    signer = key_signer(7)
    provider = None
    try:
        packed_preparation(db, tmp_path, name, FILES, max_size="600KiB")
        provider = start_provider(url, tmp_path)
        with curio_sp() as sp:
            sp.arm("reject")  # the first piece's deal is refused
            runner = DealRunner(db, lambda _a: signer, Tuning(timeout=5.0))
            try:
                views = make_deals(
                    db,
                    MakeRequest(
                        preparation=name,
                        provider="f01234",
                        sp_url=sp.url,
                        client=signer.address,
                        url_templates=[f"{provider.url}/piece/{{pieceCid}}"],
                    ),
                    runner,
                )
            finally:
                runner.close()
            schedule = server.api(
                "POST",
                "/api/schedules",
                json={
                    "preparation": name,
                    "providers": [
                        {"provider": "f05678", "spUrl": sp.url},
                        {"provider": "f09999", "spUrl": sp.url},
                    ],
                    "client": signer.address,
                    "replicas": 2,
                    "perDay": 4,
                    "urlTemplate": f"{provider.url}/piece/{{pieceCid}}",
                },
            )
            assert schedule.status_code == 201, schedule.text
            sid = schedule.json()["id"]
    finally:
        if provider is not None:
            provider.stop()
        db.dispose()
    assert [v.state for v in views] == ["rejected", "accepted", "accepted"]

    page.get_by_role("link", name="Deals").click()
    panel = page.locator("#deals")
    expect(page.locator("main > section#deals")).to_have_count(1)  # a card of its own
    rejected = panel.locator(f"tr[data-deal='{views[0].ulid}']")
    expect(rejected.locator("td[data-label='State']")).to_contain_text("rejected")
    expect(rejected.locator("td[data-label='Last answer']")).to_contain_text(
        "426 Deal rejected by market: test rejection"
    )
    expect(rejected.locator("td[data-label='Preparation']")).to_have_text(name)
    for view in views[1:]:
        row = panel.locator(f"tr[data-deal='{view.ulid}']")
        expect(row.locator("td[data-label='State']")).to_contain_text("accepted")
        expect(row.locator("td[data-label='Provider']")).to_have_text("f01234")
    expect(panel.locator("#deals-summary")).to_contain_text("rejected")

    # The state filter asks the server for rejected deals only.
    panel.get_by_label("State").select_option("rejected")
    expect(panel.locator(f"tr[data-deal='{views[1].ulid}']")).to_have_count(0)
    expect(rejected).to_have_count(1)
    panel.get_by_label("State").select_option("")

    schedule_row = panel.locator(f"tr[data-schedule='{sid}']")
    expect(schedule_row.locator("td[data-label='Providers']")).to_have_text("f05678, f09999")
    expect(schedule_row.locator("td[data-label='Limits']")).to_have_text("4/day")
    schedule_row.get_by_role("button", name=f"Pause schedule {sid}").click()
    expect(schedule_row.locator("td[data-label='State']")).to_have_text("paused")
    assert server.api("GET", f"/api/schedules/{sid}").json()["state"] == "paused"

    panel.scroll_into_view_if_needed()
    shot(page, tmp_path / "deals-panel.png")
    page.set_viewport_size(PHONE)
    panel.scroll_into_view_if_needed()
    expect(rejected.locator("td[data-label='Last answer']")).to_be_visible()
    shot(page, tmp_path / "deals-panel-phone.png", full_page=False)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    schedule_row.get_by_role("button", name=f"Resume schedule {sid}").click()
    expect(schedule_row).to_have_attribute("data-state", re.compile("active"))
    # Paused again and deleted: the shared server's worker must not make these deals.
    assert server.api("DELETE", f"/api/schedules/{sid}").status_code == 200
