"""Running the real worker from the admin page: bad fields, start, logs, jobs, pieces, stop."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from dataset_worker.prep.demo import write_demo_tree
from tests.e2e.conftest import DESKTOP, PHONE, WORK_MS, Server, screenshot, submit_start

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def start_form(page: Page) -> Locator:
    return page.locator("#start-form")


BAD_FIELDS = {
    # case: (label, typed value, the same request sent directly, fields the message may be about)
    "concurrency-0": ("Concurrency", "0", {"concurrency": 0}, {"concurrency"}),
    "concurrency-text": ("Concurrency", "two", {"concurrency": "two"}, {"concurrency"}),
    "min-interval-5x": ("Min interval", "5x", {"minInterval": "5x"}, {"minInterval"}),
    "min-above-max": ("Max interval", "1s", {"maxInterval": "1s"}, {"minInterval", "maxInterval"}),
}


@pytest.mark.parametrize("case", BAD_FIELDS)
def test_a_bad_field_shows_the_api_message_next_to_it(
    signed_in: Page, server: Server, case: str
) -> None:
    label, value, body, fields = BAD_FIELDS[case]
    page = signed_in
    expected = server.api("POST", "/api/dataset-worker/start", json=body)
    assert expected.status_code == 400, expected.text
    message = expected.json()["error"]

    page.get_by_label(label, exact=True).fill(value)
    submit_start(page)

    # The server's sentence, word for word, in the error slot of the field it is about.
    slot = start_form(page).locator(".field-error").filter(has_text=message)
    expect(slot).to_have_count(1)
    expect(slot).to_have_text(message)
    field = slot.locator("xpath=ancestor::*[@data-field][1]").get_attribute("data-field")
    assert field in fields
    expect(start_form(page).locator(f"[data-field='{field}'] input")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.locator("#worker-state")).to_have_text("Stopped")
    screenshot(page, f"worker-bad-field-{case}")


def test_run_a_preparation_from_the_page(signed_in: Page, server: Server) -> None:
    page = signed_in
    source, output = server.data_dir / "demo-source", server.data_dir / "demo-output"
    write_demo_tree(source)

    # Create the preparation through the form; 1000 KiB CARs make a dozen pack jobs.
    page.get_by_role("button", name="New preparation").click()
    form = page.locator("#prep-form")
    form.get_by_label("Name").fill("demo")
    form.get_by_label("Source folder").fill(str(source))
    form.get_by_label("Output folder (CAR files)").fill(str(output))
    form.get_by_label("Max CAR size").fill("1000KiB")
    form.get_by_label("Manual steps", exact=False).check()  # the card's buttons start each step
    form.get_by_role("button", name="Create preparation").click()
    card = page.locator("li.prep[data-name='demo']")
    expect(card).to_be_visible()
    expect(form).to_be_hidden()

    # Start the worker with a config; it shows as running with the API's pid and config.
    page.get_by_label("Concurrency").fill("2")
    page.get_by_label("Min interval", exact=True).fill("200ms")
    page.get_by_label("Max interval", exact=True).fill("1s")
    submit_start(page)
    expect(page.locator("#worker-state")).to_have_text("Running")
    status = server.api("GET", "/api/dataset-worker/status").json()
    assert status["running"] is True
    expect(page.locator("#worker-pid")).to_have_text(str(status["pid"]))
    expect(page.locator("#worker-config [data-key='concurrency'] dd")).to_have_text("2")
    expect(page.locator("#worker-config [data-key='minInterval'] dd")).to_have_text("200ms")
    uptime = page.locator("#worker-uptime")
    expect(uptime).to_have_text(re.compile(r"^\d+s$"))
    expect(uptime).not_to_have_text(uptime.inner_text(), timeout=5_000)  # it ticks
    expect(page.locator("#logs-view .line").first).to_be_visible()
    screenshot(page, "worker-running")

    # Scan from the card; the worker scans, then packs every job.
    card.get_by_role("button", name="Start scan").click()
    expect(card.locator(".card-message")).to_contain_text("Scan queued")
    pack_counts = card.locator(".job-bar[data-type='pack'] .job-counts")
    expect(pack_counts).to_have_text(re.compile(r"^\d+ complete$"), timeout=WORK_MS)
    expect(card.locator(".job-bar[data-type='scan'] .job-counts")).to_have_text("1 complete")
    expect(page.locator("#logs-view")).to_contain_text("job.complete")

    # Then the directory DAG: one more piece, and the preparation gets its root CID.
    card.get_by_role("button", name="Start daggen").click()
    daggen_counts = card.locator(".job-bar[data-type='daggen'] .job-counts")
    expect(daggen_counts).to_have_text("1 complete", timeout=WORK_MS)
    root_cid = server.api("GET", "/api/preparations/demo").json()["rootCid"]
    assert root_cid
    expect(card.locator("[data-fact='Root CID'] dd span")).to_have_attribute("title", root_cid)

    # Jobs table: newest first, filter by type, page by cursor.
    query = {"limit": 1000, "preparation": "demo"}
    jobs = server.api("GET", "/api/dataset-worker/jobs", params=query).json()["jobs"]
    assert len(jobs) > 10
    rows = page.locator("#jobs-body tr[data-job-id]")
    page.get_by_label("Preparation", exact=True).select_option("demo")
    expect(rows.first).to_have_attribute("data-job-id", str(jobs[0]["id"]))
    page.get_by_label("Type", exact=True).select_option("scan")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".badge")).to_have_text("complete")
    page.get_by_label("Type", exact=True).select_option("")
    page.get_by_label("Per page").select_option("10")
    expect(rows).to_have_count(10)
    page.get_by_role("button", name="Older →").click()
    expect(page.locator("#jobs-page")).to_have_text("Page 2")
    expect(rows).to_have_count(len(jobs) - 10)
    expect(rows.last).to_have_attribute("data-job-id", str(jobs[-1]["id"]))
    page.get_by_role("button", name="← Newer").click()
    expect(rows.first).to_have_attribute("data-job-id", str(jobs[0]["id"]))

    # Pieces: one per pack job, each with a piece CID and a copy button.
    pieces = server.api("GET", "/api/preparations/demo/pieces").json()
    assert pieces
    card.get_by_role("button", name=re.compile(r"^Pieces")).click()
    piece_rows = card.locator(".pieces-table tbody tr")
    expect(piece_rows).to_have_count(len(pieces))
    expect(piece_rows.first.locator("code.cid").first).to_have_text(re.compile(r"^baga"))
    expect(
        piece_rows.first.get_by_role("button", name="Copy piece CID", exact=True)
    ).to_be_visible()
    # Beside it, the v2 piece CID (FRC-0069) the API gives for the same piece.
    v2_cell = piece_rows.first.locator("code.cid-v2")
    expect(v2_cell).to_have_text(re.compile(r"^bafkzcib"))  # shortened; whole in its title
    first_v2 = v2_cell.get_attribute("title")
    assert first_v2 in {p["pieceCidV2"] for p in pieces}
    expect(piece_rows.first.get_by_role("button", name="Copy piece CID v2")).to_be_visible()
    expect(page.locator("#chart svg polyline")).to_have_count(1)
    screenshot(page, "preparation-packed")
    page.set_viewport_size(PHONE)
    screenshot(page, "preparation-packed-phone")
    page.set_viewport_size(DESKTOP)

    # Stop with a grace period: the page shows the worker stopped and how it ended.
    page.get_by_label("Grace period (seconds)").fill("5")
    page.get_by_role("button", name="Stop worker").click()
    expect(page.locator("#worker-state")).to_have_text("Stopped", timeout=20_000)
    expect(page.locator("#worker-exit")).to_have_text("exit code 130 (interrupted)")
    expect(page.locator("#worker-message")).to_be_hidden()  # no kill to report
    expect(start_form(page)).to_be_visible()
    screenshot(page, "worker-stopped")


def test_a_worker_that_exits_by_itself_shows_its_exit_code(signed_in: Page, server: Server) -> None:
    page = signed_in
    page.get_by_label("When no work is left").check()
    page.get_by_label("Min interval", exact=True).fill("100ms")
    submit_start(page)
    # With nothing to do, every thread exits on its first empty poll: exit code 0.
    expect(page.locator("#worker-exit")).to_have_text("exit code 0 (finished)", timeout=20_000)
    expect(page.locator("#worker-state")).to_have_text("Stopped")
    screenshot(page, "worker-exited-by-itself")
