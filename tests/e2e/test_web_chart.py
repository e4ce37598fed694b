"""The packed-bytes chart draws the pieces already recorded as soon as the page loads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import DESKTOP, PHONE, WORK_MS, Server, screenshot, sign_in
from tests.support.wait import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KIB = 1024
NAME = "chart-history"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def pack(server: Server) -> None:
    """Create a preparation of four one-piece files and let the real worker pack it."""
    source = server.data_dir / NAME
    source.mkdir()
    for i in range(4):
        (source / f"part-{i}.bin").write_bytes(bytes([i]) * (100 * KIB))
    body = {
        "name": NAME,
        "source": str(source),
        "output": str(server.data_dir / f"{NAME}-cars"),
        "maxSize": "120KiB",  # one 128 KiB piece per file
        "minPieceSize": "128KiB",
    }
    created = server.api("POST", "/api/preparations", json=body)
    assert created.status_code == 201, created.text
    # 409: creating it already queued the scan.
    assert server.api("POST", f"/api/preparations/{NAME}/start-scan").status_code in (200, 409)
    started = server.api(
        "POST", "/api/dataset-worker/start", json={"minInterval": "200ms", "maxInterval": "1s"}
    )
    assert started.status_code == 200, started.text
    try:

        def packed() -> bool:
            reply = server.api("GET", f"/api/preparations/{NAME}").json()
            return bool(reply["jobs"]["pack"]["complete"] == 4)

        wait_until(packed, WORK_MS / 1000, "the four pack jobs to complete", every=0.2)
    finally:
        server.stop_worker()


def test_a_fresh_load_draws_the_packed_bytes_already_recorded(page: Page, server: Server) -> None:
    pack(server)
    loaded_at = datetime.now(UTC)
    sign_in(page, server)  # a new tab: no samples of an earlier page view

    chart = page.locator("#chart")
    expect(chart.locator("svg polyline")).to_have_count(1)
    expect(chart.locator(".chart-empty")).to_have_count(0)
    # The line starts at the first piece recorded, before this page was opened.
    history = server.api("GET", "/api/packed-history").json()["points"]
    started = parse_time(chart.locator("svg").get_attribute("data-from") or "")
    assert started < loaded_at
    assert abs((started - parse_time(history[0]["time"])).total_seconds()) < 0.001
    # And ends at the total the preparations report now (every preparation of the server).
    names = [p["name"] for p in server.api("GET", "/api/preparations").json()]
    total = sum(server.api("GET", f"/api/preparations/{n}").json()["bytesPacked"] for n in names)
    assert total == history[-1]["bytes"]
    shown = page.evaluate(f"import('/format.js').then((m) => m.formatBytes({total}))")
    expect(page.locator("#chart-now")).to_have_text(f"{shown} of data packed")
    page.locator("#chart-box").scroll_into_view_if_needed()
    screenshot(page, "chart-fresh-load", full_page=False)
    page.set_viewport_size(PHONE)
    page.locator("#chart-box").scroll_into_view_if_needed()
    expect(chart.locator("svg polyline")).to_have_count(1)  # redrawn at the phone's width
    screenshot(page, "chart-fresh-load-phone", full_page=False)
    page.set_viewport_size(DESKTOP)
