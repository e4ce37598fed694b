"""A preparation card's file browser and its Delete button, in headless Chromium.

The preparations are scanned, packed and given their DAG by the real job bodies, run in process
on the server's own SQLite database; the page reads them through the real server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect
from sqlalchemy import select

from dataset_worker.config import sqlite_url
from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType
from tests.e2e.conftest import DESKTOP, PHONE, Server, screenshot
from tests.support.preps import claim, packed_preparation

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KIB = 1024
MANY = 105  # more than one page (100) of the browser
FILES: dict[str, int | bytes] = {
    "readme.txt": b"hello\n",
    "big.bin": 2500 * KIB,
    "dir/b.bin": 300 * KIB,
    "dir/sub/ünïcødé <b>bold<b>.txt": b"escaped, never markup",
    **{f"many/f-{i:03d}.txt": bytes([i]) for i in range(MANY)},
}


@pytest.fixture
def db(server: Server) -> Iterator[Database]:
    database = Database(sqlite_url(server.state_dir / "dataset-worker.db"))
    yield database
    database.dispose()


def card(page: Page, name: str) -> Locator:
    return page.locator(f"li.prep[data-name='{name}']")


def rows(browser: Locator) -> Locator:
    return browser.locator(".explore-table tbody tr")


def test_browse_folders_and_copy_cids(
    signed_in: Page, server: Server, db: Database, browser_context: BrowserContext
) -> None:
    page = signed_in
    packed_preparation(db, server.data_dir, "browse", FILES)
    browse = card(page, "browse")
    expect(browse).to_be_visible()
    browse.get_by_role("button", name="Browse files").click()
    files = browse.locator("section.explore")
    expect(files).to_be_visible()
    expect(browse.get_by_role("button", name="Browse files")).to_have_attribute(
        "aria-expanded", "true"
    )

    # The root: folders first, then files, as the API lists them.
    root = server.api("GET", "/api/preparations/browse/explore").json()
    names = [e["name"] for e in root["entries"]]
    assert names == ["dir", "many", "big.bin", "readme.txt"]
    expect(rows(files)).to_have_count(len(names))
    for row, entry in zip(rows(files).all(), root["entries"], strict=True):
        expect(row).to_have_attribute("data-name", entry["name"])
    big = files.locator("tr[data-name='big.bin']")
    big_entry = next(e for e in root["entries"] if e["name"] == "big.bin")
    expect(big.locator("td[data-label='CID'] code")).to_have_attribute("title", big_entry["cid"])
    expect(big.get_by_role("button", name="Copy piece CID")).to_have_count(
        min(3, len(big_entry["pieceCids"]))
    )
    expect(files.get_by_role("navigation", name="Folder path")).to_have_text("root")

    # Copy a CID: the clipboard gets the whole CID.
    browser_context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    copy = big.get_by_role("button", name="Copy CID of big.bin")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == big_entry["cid"]

    # Into a folder and deeper; names are text, never markup.
    files.get_by_role("button", name="dir/").click()
    expect(files.get_by_role("navigation", name="Folder path")).to_have_text(
        re.compile("root.*dir")
    )
    expect(rows(files)).to_have_count(2)
    files.get_by_role("button", name="sub/").click()
    odd = "ünïcødé <b>bold<b>.txt"
    expect(files.locator(".file-name")).to_have_text(odd)
    expect(files.locator("b")).to_have_count(0)
    expect(files.locator("[aria-current='location']")).to_have_text("sub")
    screenshot(page, "explore-deep")

    # The breadcrumb leads back; a big folder pages with "Show more".
    files.get_by_role("navigation", name="Folder path").get_by_role("button", name="root").click()
    expect(rows(files)).to_have_count(len(names))
    files.get_by_role("button", name="many/").click()
    expect(rows(files)).to_have_count(100)
    more = files.get_by_role("button", name="Show more")
    expect(more).to_be_visible()
    more.click()
    expect(rows(files)).to_have_count(MANY)
    expect(more).to_be_hidden()
    expect(files.locator(".explore-summary")).to_contain_text(f"{MANY} entries")

    files.get_by_role("navigation", name="Folder path").get_by_role("button", name="root").click()
    expect(rows(files)).to_have_count(len(names))
    browse.scroll_into_view_if_needed()
    screenshot(page, "explore-desktop")
    page.set_viewport_size(PHONE)
    browse.scroll_into_view_if_needed()
    screenshot(page, "explore-phone")
    # Nothing sticks out sideways at phone width.
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= PHONE["width"], overflow
    page.set_viewport_size(DESKTOP)

    assert server.api("DELETE", "/api/preparations/browse").status_code == 200


def test_delete_with_a_confirm_step(signed_in: Page, server: Server, db: Database) -> None:
    page = signed_in
    prep = packed_preparation(db, server.data_dir, "doomed", {"a.txt": b"a", "b.bin": 50 * KIB})
    cars = list(prep.output.glob("*.car"))
    assert cars
    doomed = card(page, "doomed")
    expect(doomed).to_be_visible()

    # The first click only asks; Cancel leaves everything as it was.
    doomed.get_by_role("button", name="Delete…").click()
    confirm = doomed.get_by_role("form", name="Delete doomed")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text('Delete preparation "doomed"?')
    expect(confirm.get_by_role("button", name="Delete preparation")).to_be_focused()
    screenshot(page, "delete-confirm")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    assert server.api("GET", "/api/preparations/doomed").status_code == 200

    # Refused while a job is processing: the server's sentence shows in the confirm step.
    with db.read() as session:
        job = session.scalars(
            select(Job.id).where(Job.attachment_id == prep.attachment_id, Job.type == JobType.PACK)
        ).first()
    assert job is not None
    claim(db, job)
    doomed.get_by_role("button", name="Delete…").click()
    confirm.get_by_label("Also delete its CAR files from the output folder").check()
    confirm.get_by_role("button", name="Delete preparation").click()
    expect(confirm.locator(".form-error")).to_contain_text(f"pack job {job}")
    page.set_viewport_size(PHONE)
    doomed.scroll_into_view_if_needed()
    screenshot(page, "delete-refused-phone")
    page.set_viewport_size(DESKTOP)
    with db.write() as session:
        claimed = session.get(Job, job)
        assert claimed is not None
        claimed.state, claimed.worker_id = JobState.COMPLETE, None

    confirm.get_by_role("button", name="Delete preparation").click()
    expect(doomed).to_have_count(0)
    notice = page.locator("#preps-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text('Deleted preparation "doomed"')
    expect(notice).to_contain_text(f"{len(cars)} CAR file")
    assert server.api("GET", "/api/preparations/doomed").status_code == 404
    assert not list(prep.output.glob("*.car"))
    screenshot(page, "delete-done")
