"""Operations on the admin page, against the real server and worker: the Workers panel (every
worker row, alive or stale, managed or not) and the Retry buttons of a failed preparation (its
card, and an errored row of the jobs table) — the preparation then runs to the end by itself."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import delete, update

from dataset_worker.config import sqlite_url
from dataset_worker.db import Database
from dataset_worker.db.models import Worker, utcnow
from tests.e2e.conftest import DESKTOP, PHONE, WORK_MS, Server, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FAST = {"minInterval": "100ms", "maxInterval": "500ms"}


@pytest.fixture
def server_db(server: Server) -> Iterator[Database]:
    """The server's SQLite database; worker rows the test adds are removed afterwards."""
    database = Database(sqlite_url(server.state_dir / "dataset-worker.db"))
    yield database
    with database.write() as session:
        session.execute(delete(Worker).where(Worker.id.in_(["remote-e2e", "silent-e2e"])))
    database.dispose()


def start_worker(server: Server, **config: object) -> int:
    reply = server.api("POST", "/api/dataset-worker/start", json={**FAST, **config})
    assert reply.status_code == 200, reply.text
    pid: int = reply.json()["pid"]
    return pid


def test_the_workers_panel(signed_in: Page, server: Server, server_db: Database) -> None:
    page = signed_in
    panel = page.locator("#workers")
    rows = panel.locator("#workers-body tr")
    pid = start_worker(server, concurrency=2)

    ours = rows.filter(has=page.locator("td", has_text=re.compile(rf"^{pid}$")))
    expect(ours).to_have_count(2, timeout=WORK_MS)
    for index in range(2):
        row = ours.nth(index)
        expect(row).to_have_attribute("data-status", "alive")
        expect(row.locator("td[data-label='Managed']")).to_have_text("this server")
        expect(row.locator(".badge")).to_have_text("alive")

    # A worker of another machine, alive: listed, not run by this server.
    with server_db.write() as session:
        session.add(Worker(id="remote-e2e", hostname="far-away", pid=4242, last_heartbeat=utcnow()))
    remote = panel.locator("tr[data-worker-id='remote-e2e']")
    expect(remote).to_have_attribute("data-managed", "false")
    expect(remote.locator("td[data-label='Host']")).to_have_text("far-away")
    expect(remote.locator("td[data-label='Managed']")).to_have_text("—")
    # The module's own server (tests/e2e/conftest.py): only this test's workers are listed.
    expect(page.locator("#workers-summary")).to_have_text("3 alive")
    panel.scroll_into_view_if_needed()
    screenshot(page, "workers-panel")
    page.set_viewport_size(PHONE)
    panel.scroll_into_view_if_needed()
    screenshot(page, "workers-panel-phone", full_page=False)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)

    # Stopped, this server's rows go; a row silent for minutes shows as stale.
    server.stop_worker()
    expect(ours).to_have_count(0, timeout=WORK_MS)
    with server_db.write() as session:
        session.execute(
            update(Worker).where(Worker.id == "remote-e2e").values(last_heartbeat=utcnow())
        )
        session.add(
            Worker(
                id="silent-e2e",
                hostname="far-away",
                pid=4343,
                last_heartbeat=utcnow() - timedelta(minutes=5),
            )
        )
    silent = panel.locator("tr[data-worker-id='silent-e2e']")
    expect(silent).to_have_attribute("data-status", "stale")
    expect(silent.locator(".badge")).to_have_text("stale")
    expect(page.locator("#workers-summary")).to_have_text("1 alive · 1 stale")
    screenshot(page, "workers-panel-stale")


def failing_preparation(server: Server, name: str) -> Path:
    """A preparation (auto chain) whose queued scan will fail: its source folder is gone."""
    source = server.data_dir / name
    source.mkdir()
    (source / "a.txt").write_text(f"{name}\n")
    body = {"name": name, "source": str(source), "output": str(source) + "-cars"}
    created = server.api("POST", "/api/preparations", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["autoChain"] is True
    shutil.rmtree(source)
    return source


def restore(source: Path) -> None:
    source.mkdir()
    (source / "a.txt").write_text("back again\n")
    (source / "b.txt").write_text("and another file\n")


def stage(card: Locator) -> Locator:
    return card.locator(".stage")


def test_retry_buttons_bring_failed_preparations_back(signed_in: Page, server: Server) -> None:
    page = signed_in
    card_source = failing_preparation(server, "retry-card")
    row_source = failing_preparation(server, "retry-row")
    start_worker(server)
    card = page.locator("li.prep[data-name='retry-card']")
    expect(stage(card)).to_have_text("error", timeout=WORK_MS)
    retry = card.get_by_role("button", name="Retry 1 failed job")
    expect(retry).to_be_visible()
    screenshot(page, "prep-card-retry")
    page.set_viewport_size(PHONE)
    card.scroll_into_view_if_needed()
    screenshot(page, "prep-card-retry-phone", full_page=False)
    page.set_viewport_size(DESKTOP)

    # The card's button: the failed scan is ready again, and the chain runs to the end.
    restore(card_source)
    retry.click()
    expect(card.locator(".card-message")).to_have_text(re.compile(r"^1 job ready again: \d+\.$"))
    expect(stage(card)).to_have_text("done", timeout=WORK_MS)
    expect(retry).to_be_hidden()
    status = server.api("GET", "/api/preparations/retry-card").json()
    assert status["rootCid"] and status["jobs"]["daggen"]["complete"] == 1

    # A row of the jobs table: its own Retry button.
    page.get_by_label("Preparation", exact=True).select_option("retry-row")
    page.get_by_label("Status", exact=True).select_option("error")
    rows = page.locator("#jobs-body tr[data-job-id]")
    expect(rows).to_have_count(1, timeout=WORK_MS)
    expect(rows.first.locator(".attempts")).to_have_text(re.compile(r"1 failed attempt"))
    row_retry = rows.first.get_by_role("button", name="Retry")
    page.locator("#jobs").scroll_into_view_if_needed()
    screenshot(page, "jobs-row-retry")
    restore(row_source)
    row_retry.click()
    expect(rows).to_have_count(0)  # no failed job left in that preparation
    row_card = page.locator("li.prep[data-name='retry-row']")
    expect(stage(row_card)).to_have_text("done", timeout=WORK_MS)
    page.get_by_label("Status", exact=True).select_option("")
    expect(rows.first.locator(".worker-cell")).not_to_have_text("—")  # who ran it, kept
