"""A job that fails: its error in the jobs table (expandable) and on the worker's stderr."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WORK_MS, Server, screenshot, submit_start

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_failed_job_shows_its_error_message(signed_in: Page, server: Server) -> None:
    page = signed_in
    source = server.data_dir / "vanishing"
    source.mkdir()
    (source / "a.txt").write_text("soon gone\n")
    body = {
        "name": "vanishing",
        "source": str(source),
        "output": str(source) + "-cars",
        "noAuto": True,  # the scan is started below, after the source is gone
    }
    created = server.api("POST", "/api/preparations", json=body)
    assert created.status_code == 201, created.text
    shutil.rmtree(source)  # the scan will find no source folder
    assert server.api("POST", "/api/preparations/vanishing/start-scan").status_code == 200

    page.get_by_label("Min interval", exact=True).fill("200ms")
    submit_start(page)
    page.get_by_label("Status", exact=True).select_option("error")
    page.get_by_label("Preparation", exact=True).select_option("vanishing")
    row = page.locator("#jobs-body tr[data-job-id]")
    expect(row).to_have_count(1, timeout=WORK_MS)
    expect(row.locator(".badge")).to_have_text("error")

    failed = server.api(
        "GET", "/api/dataset-worker/jobs", params={"status": "error", "preparation": "vanishing"}
    ).json()["jobs"]
    message = failed[0]["error"]
    assert message
    toggle = row.get_by_role("button", name="Error")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator(f"#job-error-{failed[0]['id']} pre")).to_have_text(message)
    # The worker logged it at ERROR, which goes to stderr.
    expect(page.locator("#logs-view .line-stderr").filter(has_text="job.error")).not_to_have_count(
        0
    )
    screenshot(page, "job-error")

    toggle.press("Enter")  # keyboard too
    expect(page.locator(f"#job-error-{failed[0]['id']}")).to_have_count(0)
