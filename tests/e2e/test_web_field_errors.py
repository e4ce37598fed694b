"""A 400 naming several fields marks every one of them, in the start and new-preparation forms."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import DESKTOP, PHONE, Server, screenshot, submit_start

pytestmark = pytest.mark.browser


def api_errors(server: Server, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The problems the API reports for `body`: what the form must show."""
    reply = server.api("POST", path, json=body)
    assert reply.status_code == 400, reply.text
    errors: list[dict[str, Any]] = reply.json()["errors"]
    return errors


def assert_marked(form: Locator, errors: list[dict[str, Any]], unmarked: list[str]) -> None:
    """Each named field shows its own message and is aria-invalid; the others are not."""
    for problem in errors:
        wrapper = form.locator(f"[data-field='{problem['field']}']")
        expect(wrapper.locator(".field-error")).to_have_text(problem["message"])
        expect(wrapper.locator("input")).to_have_attribute("aria-invalid", "true")
    for field in unmarked:
        expect(form.locator(f"[data-field='{field}'] input")).not_to_have_attribute(
            "aria-invalid", "true"
        )
    expect(form.locator(".field.invalid")).to_have_count(len(errors))
    expect(form.locator(".form-error")).to_have_text("")


def test_the_start_form_marks_every_field_the_api_names(signed_in: Page, server: Server) -> None:
    page = signed_in
    errors = api_errors(
        server, "/api/dataset-worker/start", {"concurrency": 0, "minInterval": "5x"}
    )
    assert [problem["field"] for problem in errors] == ["concurrency", "minInterval"]

    page.get_by_label("Concurrency").fill("0")
    page.get_by_label("Min interval", exact=True).fill("5x")
    submit_start(page)

    assert_marked(page.locator("#start-form"), errors, unmarked=["maxInterval"])
    expect(page.get_by_label("Concurrency")).to_be_focused()  # the first one, in page order
    expect(page.locator("#worker-state")).to_have_text("Stopped")
    page.locator("#start-form").scroll_into_view_if_needed()
    screenshot(page, "start-form-two-errors", full_page=False)
    page.set_viewport_size(PHONE)
    page.locator("#start-form").scroll_into_view_if_needed()
    screenshot(page, "start-form-two-errors-phone", full_page=False)
    page.set_viewport_size(DESKTOP)


def test_the_new_preparation_form_marks_every_field_the_api_names(
    signed_in: Page, server: Server
) -> None:
    page = signed_in
    source = server.data_dir / "two-bad-fields"
    source.mkdir()
    output = str(source) + "-cars"
    body = {
        "name": "123",
        "source": str(source),
        "output": output,
        "maxSize": "lots",
        "minPieceSize": "1MiB",
        "noDag": False,
    }
    errors = api_errors(server, "/api/preparations", body)
    assert [problem["field"] for problem in errors] == ["name", "maxSize"]

    page.get_by_role("button", name="New preparation").click()
    form = page.locator("#prep-form")
    form.get_by_label("Name").fill("123")
    form.get_by_label("Source folder").fill(str(source))
    form.get_by_label("Output folder (CAR files)").fill(output)
    form.get_by_label("Max CAR size").fill("lots")
    form.get_by_role("button", name="Create preparation").click()

    assert_marked(form, errors, unmarked=["source", "output", "minPieceSize", "pieceSize"])
    expect(form.get_by_label("Name")).to_be_focused()
    assert "123" not in [p["name"] for p in server.api("GET", "/api/preparations").json()]
    form.scroll_into_view_if_needed()
    screenshot(page, "prep-form-two-errors", full_page=False)
    page.set_viewport_size(PHONE)
    form.scroll_into_view_if_needed()
    screenshot(page, "prep-form-two-errors-phone", full_page=False)
    page.set_viewport_size(DESKTOP)


def test_a_relative_source_hides_no_other_field(signed_in: Page, server: Server) -> None:
    """The newcomer's first try: a relative source folder, a bad name and a bad size at once."""
    page = signed_in
    body = {"name": ".hidden", "source": "photos/2024", "output": "out/cars", "maxSize": "lots"}
    errors = api_errors(server, "/api/preparations", body)
    assert [problem["field"] for problem in errors] == ["name", "maxSize", "source", "output"]

    page.get_by_role("button", name="New preparation").click()
    form = page.locator("#prep-form")
    form.get_by_label("Name").fill(".hidden")
    form.get_by_label("Source folder").fill("photos/2024")
    form.get_by_label("Output folder (CAR files)").fill("out/cars")
    form.get_by_label("Max CAR size").fill("lots")
    form.get_by_role("button", name="Create preparation").click()

    assert_marked(form, errors, unmarked=["minPieceSize", "pieceSize"])
    expect(form.locator("[data-field='source'] .field-error")).to_contain_text(
        "must be an absolute path"
    )
