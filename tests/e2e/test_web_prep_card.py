"""A preparation card shows its errors in the error colour, and its news in the success one."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.e2e.conftest import PHONE, Server, screenshot

pytestmark = pytest.mark.browser

NAME = "card-colours"
FAILURE = "Internal error: OperationalError: database is locked"


def colour(page: Page, variable: str) -> str:
    """The computed colour a CSS variable of the page's theme gives."""
    return str(
        page.evaluate(
            """(variable) => {
                const probe = document.createElement("span");
                probe.style.color = `var(${variable})`;
                document.body.append(probe);
                const value = getComputedStyle(probe).color;
                probe.remove();
                return value;
            }""",
            variable,
        )
    )


def shown_colour(locator: Locator) -> str:
    return str(locator.evaluate("(el) => getComputedStyle(el).color"))


def fail_status(route: Route) -> None:
    # The server answering this one preparation's status with a failure, as it would while the
    # database is locked: everything else on the page keeps talking to the real server.
    route.fulfill(status=500, json={"error": FAILURE, "detail": None})


def test_a_card_error_uses_the_error_colour(signed_in: Page, server: Server) -> None:
    page = signed_in
    source = server.data_dir / NAME
    source.mkdir()
    (source / "a.txt").write_text("a\n")
    body = {"name": NAME, "source": str(source), "output": str(source) + "-cars"}
    assert server.api("POST", "/api/preparations", json=body).status_code == 201
    assert server.api("POST", f"/api/preparations/{NAME}/start-scan").status_code in (200, 409)
    card = page.locator(f"li.prep[data-name='{NAME}']")
    message = card.locator(".card-message")
    expect(card).to_be_visible()
    danger = colour(page, "--danger")
    assert danger != colour(page, "--ok")

    # The status of the card cannot be read: the reason, in the error colour.
    page.route(f"**/api/preparations/{NAME}", fail_status)
    expect(message).to_have_text(FAILURE)
    expect(message).to_have_class(re.compile(r"\bis-error\b"))
    assert shown_colour(message) == danger
    screenshot(page, "prep-card-error")
    page.set_viewport_size(PHONE)
    card.scroll_into_view_if_needed()
    screenshot(page, "prep-card-error-phone", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 800})

    # Once it reads again, the stale error goes away.
    page.unroute(f"**/api/preparations/{NAME}", fail_status)
    expect(message).to_have_text("")
    expect(message).not_to_have_class(re.compile(r"\bis-error\b"))

    # The scan is queued: starting it again could only be refused, so the button is off.
    start = card.get_by_role("button", name="Start scan")
    expect(start).to_be_disabled()
    expect(start).to_have_attribute("title", "The scan is already queued.")

    # A refused action is an error too, and stays shown: the scan is paused (the button comes
    # on), then queued again by someone else just before the page's request reaches the server,
    # which refuses it (409).
    assert server.api("POST", f"/api/preparations/{NAME}/pause-scan").status_code == 200
    expect(start).to_be_enabled()

    def queued_meanwhile(route: Route) -> None:
        assert server.api("POST", f"/api/preparations/{NAME}/start-scan").status_code == 200
        route.continue_()

    page.route(f"**/api/preparations/{NAME}/start-scan", queued_meanwhile)
    start.click()
    expect(message).to_contain_text("is already queued")
    expect(message).to_have_class(re.compile(r"\bis-error\b"))
    assert shown_colour(message) == danger
