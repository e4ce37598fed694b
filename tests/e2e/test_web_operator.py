"""What an operator needs to see on the page, in headless Chromium against the real server: a
card shows its newest job error, start buttons that would only redo finished work are off,
byte figures say which bytes they count, a preparation's own storages fold under it, and on a
390 px phone every section link is on screen and the Jobs table shows the error in the job's card.

The jobs run in process on the server's own SQLite database (the real job bodies); screenshots
at 1280x800 and 390x844 are saved under the test's tmp dir (copies are in docs/screenshots/).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from dataset_worker.config import sqlite_url
from dataset_worker.db import Database
from dataset_worker.db.models import JobState, JobType, Preparation, SourceAttachment
from dataset_worker.prep import CreatePreparationRequest, create_preparation
from tests.e2e.conftest import DESKTOP, PHONE, Server
from tests.support.jobs import add_job, run_ready_jobs, write_files
from tests.support.preps import packed_preparation

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BROKEN, DONE = "ux-broken", "ux-done"


@pytest.fixture
def db(server: Server) -> Iterator[Database]:
    database = Database(sqlite_url(server.state_dir / "dataset-worker.db"))
    yield database
    database.dispose()


def card(page: Page, name: str) -> Locator:
    return page.locator(f"li.prep[data-name='{name}']")


def shot(page: Page, folder: Path, name: str) -> Path:
    """A PNG of what is on screen now, kept with the test's files."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def broken_preparation(db: Database, root: Path) -> str:
    """A preparation whose scan failed for real: its source folder went away before the scan."""
    source = root / f"{BROKEN}-src"
    write_files(source, {"a.txt": b"a"})
    request = CreatePreparationRequest(
        name=BROKEN, source=str(source), output=str(root / f"{BROKEN}-cars"), no_auto=True
    )
    create_preparation(db, request)
    shutil.rmtree(source)
    with db.read() as session:
        attachment = session.scalars(
            select(SourceAttachment.id).join(Preparation).where(Preparation.name == BROKEN)
        ).one()
    add_job(db, attachment, JobType.SCAN)
    [run] = run_ready_jobs(db, JobType.SCAN, attachment_id=attachment)
    assert run.state in (JobState.ERROR, JobState.READY) and run.error is not None
    return str(run.error)


def test_an_operator_sees_errors_finished_work_and_every_section(
    signed_in: Page, server: Server, db: Database, tmp_path: Path
) -> None:
    page = signed_in
    error = broken_preparation(db, server.data_dir)
    packed_preparation(
        db, server.data_dir, DONE, {"a.txt": b"a" * 5000, "d/b.txt": b"b"}, empty_folders=("void",)
    )

    # The card of the failed preparation says what failed, where the operator looks.
    broken = card(page, BROKEN)
    job_error = broken.locator(".card-job-error")
    expect(job_error).to_be_visible()
    expect(job_error.locator("p")).to_have_text(re.compile(r"^Last job error: scan job \d+ "))
    expect(job_error.locator("pre")).to_have_text(error)
    broken.scroll_into_view_if_needed()
    shot(page, tmp_path, "card-error-desktop")

    # A finished preparation: no error, the DAG is built, so Start daggen is off (and says
    # why); the scan may run again to pick up new files: "Rescan".
    done = card(page, DONE)
    expect(done.locator(".card-job-error")).to_be_hidden()
    daggen = done.get_by_role("button", name="Start daggen")
    expect(daggen).to_be_disabled()
    expect(daggen).to_have_attribute("title", re.compile(r"^The DAG is built"))
    expect(done.get_by_role("button", name="Rescan")).to_be_enabled()
    # Byte figures name their bytes: the data (source files), or the CAR files.
    expect(done.locator("[data-fact='Data scanned'] dt")).to_have_text("Data scanned")
    expect(done.locator("[data-fact='Data packed'] dd")).to_have_text(re.compile(r"\d"))
    expect(done.locator("[data-fact='Max CAR size']")).to_have_count(1)
    expect(done.locator(".progress-label").first).to_contain_text("of data")
    expect(page.locator("#chart-title")).to_have_text("Data packed over time")

    # An empty folder is not "not packed": it is not part of the dataset at all.
    done.get_by_role("button", name="Browse files").click()
    files = done.locator("section.explore")
    void = files.locator(".explore-table tbody tr[data-name='void']")
    expect(void.locator("td[data-label='CID']")).to_have_text("empty folder (not in the DAG)")
    expect(
        files.locator(".explore-table tbody tr[data-name='d'] td[data-label='CID']")
    ).not_to_have_text(re.compile("empty|not packed"))
    void.get_by_role("button", name="void/").click()
    expect(files).to_contain_text("/void is an empty folder (not in the DAG")
    done.get_by_role("button", name="Browse files").click()

    # The preparations' own storages are folded under one row each, opened on demand.
    panel = page.locator("#storages")
    group = panel.locator(f"tr.storage-group[data-group='{DONE}']")
    expect(group).to_have_count(1)
    expect(panel.locator(f"tr[data-storage='{DONE}-source']")).to_have_count(0)
    toggle = group.get_by_role("button")
    expect(toggle).to_have_text(f'Preparation "{DONE}": its own source and output (2)')
    toggle.click()
    expect(panel.locator(f"tr[data-owner='{DONE}']")).to_have_count(2)
    expect(panel.locator("tr[data-owner]").first).to_have_attribute(
        "data-storage", f"{DONE}-source"
    )
    expect(group.get_by_role("button")).to_have_attribute("aria-expanded", "true")

    # The Jobs table on a desktop: the error opens under its row.
    jobs = page.locator("#jobs")
    jobs.get_by_label("Preparation", exact=True).select_option(BROKEN)
    row = jobs.locator("#jobs-body tr[data-job-id]").first
    expect(row).to_have_attribute("data-status", re.compile("error|ready"))
    row.get_by_role("button", name="Error").click()
    expect(jobs.locator("tr.error-row pre")).to_have_text(error)
    jobs.scroll_into_view_if_needed()
    shot(page, tmp_path, "jobs-table-desktop")

    # On a phone: every section link is on screen (they wrap instead of scrolling away).
    page.set_viewport_size(PHONE)
    page.evaluate("window.scrollTo(0, 0)")
    links = page.locator("nav.sections a")
    assert links.count() == 7  # worker, logs, preparations, jobs, workers, storages, deals
    for index in range(links.count()):
        link = links.nth(index)
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (
            link.inner_text(),
            box,
        )
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, tmp_path, "nav-phone")
    page.set_viewport_size(DESKTOP)
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, tmp_path, "nav-desktop")

    # The last section link takes the phone to its panel.
    page.set_viewport_size(PHONE)
    page.locator("nav.sections a", has_text="Storages").click()
    expect(page).to_have_url(re.compile(r"#storages$"))
    expect(panel.get_by_role("heading", name="Storages")).to_be_in_viewport()

    # The Jobs table on a phone: one card per job, the error a row of the card.
    phone_row = jobs.locator("#jobs-body tr[data-job-id]").first
    cell = phone_row.locator("td.job-error-cell")
    cell.scroll_into_view_if_needed()
    expect(cell).to_be_visible()
    expect(cell.locator("pre")).to_have_text(error)
    box = phone_row.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    shot(page, tmp_path, "jobs-table-phone")

    broken.scroll_into_view_if_needed()
    expect(job_error).to_be_visible()
    shot(page, tmp_path, "card-error-phone")
    page.set_viewport_size(DESKTOP)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "card-error-desktop.png", "card-error-phone.png", "jobs-table-desktop.png",
        "jobs-table-phone.png", "nav-desktop.png", "nav-phone.png",
    ]  # fmt: skip
