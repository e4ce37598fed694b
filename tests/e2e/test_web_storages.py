"""The Storages panel against the real server and a real S3 server (moto): list, create through
the form (URL, endpoint, region, anonymous), field errors, check with its result, delete, and
secrets shown as ***; at desktop and phone sizes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import DESKTOP, PHONE, Server, screenshot
from tests.support.s3servers import S3Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SECRET = "e2e-planted-secret-9d41"
NAMES = ("e2e-lake", "e2e-vault", "e2e-nowhere")


@pytest.fixture
def storages(server: Server) -> Iterator[None]:
    """Storages this test makes are deleted afterwards (the server is shared)."""
    yield
    for name in NAMES:
        reply = server.api("DELETE", f"/api/storages/{name}")
        assert reply.status_code in (200, 404), reply.text


def test_the_storages_panel(
    signed_in: Page, server: Server, moto_server: S3Server, storages: None
) -> None:
    page = signed_in
    bucket = moto_server.new_bucket()
    for key in ("in/a.txt", "in/sub/b.bin"):
        moto_server.client.put_object(Bucket=bucket, Key=key, Body=b"x")
    vault = {
        "name": "e2e-vault",
        "url": f"s3://{bucket}/vault",
        "endpoint": moto_server.endpoint,
        "options": {"access_key_id": "AKIAE2E", "secret_access_key": SECRET},
        "allowSecretInDb": True,
    }
    assert server.api("POST", "/api/storages", json=vault).status_code == 201

    panel = page.locator("#storages")
    page.get_by_role("link", name="Storages").click()
    vault_row = panel.locator("tr[data-storage='e2e-vault']")
    expect(vault_row.locator("td[data-label='Config']")).to_contain_text("secret_access_key = ***")
    expect(vault_row.locator("td[data-label='Config']")).to_contain_text("access_key_id = ***")

    # The form: a missing name and a bad URL are shown next to their fields.
    panel.get_by_role("button", name="New storage").click()
    form = panel.locator("#storage-form")
    form.get_by_label("URL").fill("ftp://somewhere/x")
    form.get_by_role("button", name="Create storage").click()
    expect(form.locator("[data-field='name'] .field-error")).to_contain_text("name")
    form.get_by_label("Name").fill("e2e-lake")
    form.get_by_role("button", name="Create storage").click()
    expect(form.locator("[data-field='url'] .field-error")).to_contain_text("is not supported")
    expect(form.get_by_label("URL")).to_have_attribute("aria-invalid", "true")

    form.get_by_label("URL").fill(f"s3://{bucket}/in")
    form.get_by_label("Endpoint").fill(moto_server.endpoint)
    form.get_by_label("Region").fill("us-east-1")
    form.get_by_label("Anonymous").check()  # moto takes unsigned requests: no credentials needed
    form.get_by_role("button", name="Create storage").click()
    expect(panel.locator("#storages-notice")).to_contain_text('Created storage "e2e-lake"')
    expect(form).to_be_hidden()
    lake = panel.locator("tr[data-storage='e2e-lake']")
    expect(lake.locator("td[data-label='Path']")).to_have_text(f"s3://{bucket}/in")
    expect(lake.locator("td[data-label='Config']")).to_contain_text("anonymous = true")
    expect(lake.locator("td[data-label='Config']")).to_contain_text("region = us-east-1")
    assert server.api("GET", "/api/storages/e2e-lake").json()["config"]["anonymous"] is True

    lake.get_by_role("button", name="Check").click()
    result = lake.locator(".check-result")
    expect(result).to_have_class(re.compile(r"\bcheck-ok\b"))
    expect(result).to_contain_text(f"OK: s3://{bucket}/in is readable")
    expect(result).to_contain_text("a.txt")

    missing = {"name": "e2e-nowhere", "url": "s3://no-such-bucket-e2e", "anonymous": True}
    missing["endpoint"] = moto_server.endpoint
    assert server.api("POST", "/api/storages", json=missing).status_code == 201
    page.reload()
    page.get_by_role("link", name="Storages").click()
    nowhere = panel.locator("tr[data-storage='e2e-nowhere']")
    nowhere.get_by_role("button", name="Check").click()
    expect(nowhere.locator(".check-result")).to_have_class(re.compile(r"\bcheck-failed\b"))
    expect(nowhere.locator(".check-result")).to_contain_text("Failed:")
    lake.get_by_role("button", name="Check").click()
    expect(lake.locator(".check-result")).to_contain_text("readable")

    assert SECRET not in page.content()
    panel.scroll_into_view_if_needed()
    screenshot(page, "storages-panel")
    page.set_viewport_size(PHONE)
    panel.scroll_into_view_if_needed()
    screenshot(page, "storages-panel-phone", full_page=False)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)

    page.once("dialog", lambda dialog: dialog.accept())
    nowhere.get_by_role("button", name="Delete storage e2e-nowhere").click()
    expect(nowhere).to_have_count(0)
    assert server.api("GET", "/api/storages/e2e-nowhere").status_code == 404
    page.once("dialog", lambda dialog: dialog.dismiss())
    lake.get_by_role("button", name="Delete storage e2e-lake").click()
    expect(lake).to_have_count(1)  # dismissed: kept
