"""A 400 names every invalid field in `errors`, not only the first, through a real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.api_support import AdminServer, make_source


def bad_request(reply: Any) -> dict[str, Any]:
    """The body of a 400, with the fields every error body keeps."""
    assert reply.status_code == 400, reply.text
    body: dict[str, Any] = reply.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "detail" in body
    assert all(set(problem) == {"field", "message"} for problem in body["errors"]), body
    return body


def test_creating_a_preparation_names_every_bad_field(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    client = admin_server.client()
    source = make_source(tmp_path / "src", {"a": 10})
    good = {"name": "p1", "source": str(source), "output": str(tmp_path / "out")}

    # Three rule groups broken at once: each one is reported with its own field.
    body = bad_request(
        client.post(
            "/api/preparations",
            json={**good, "name": "123", "maxSize": "lots", "source": str(tmp_path / "missing")},
        )
    )
    assert [problem["field"] for problem in body["errors"]] == ["name", "maxSize", "source"]
    assert body["errors"][0]["message"].startswith('name "123" must not be all digits')
    assert body["errors"][1]["message"].startswith("maxSize: ")
    assert "is not an existing directory" in body["errors"][2]["message"]
    for problem in body["errors"]:
        assert problem["message"] in body["error"]  # the sentence still tells all of them

    # A relative folder (refused over HTTP) or an unknown storage hides no other field.
    cases = (
        (
            {"source": "photos/2024", "output": "out/cars"},
            ["source", "output"],
            "must be an absolute",
        ),
        ({"source": "nostorage"}, ["source"], 'source "nostorage" names no storage'),
    )
    for folders, wrong, folder_rule in cases:
        body = bad_request(
            client.post(
                "/api/preparations", json={**good, **folders, "name": ".x", "maxSize": "lots"}
            )
        )
        assert [problem["field"] for problem in body["errors"]] == ["name", "maxSize", *wrong]
        assert body["errors"][0]["message"].startswith('name ".x" must not start with "."')
        assert body["errors"][1]["message"].startswith("maxSize: ")
        assert all(folder_rule in problem["message"] for problem in body["errors"][2:])

    # One problem: the same shape, its message is the error sentence.
    single = bad_request(client.post("/api/preparations", json={**good, "pieceSize": "3MiB"}))
    assert single["errors"] == [{"field": "pieceSize", "message": single["error"]}]
    # Request validation (types, unknown fields) lists every problem too.
    typed = bad_request(client.post("/api/preparations", json={"name": 5, "colour": "red"}))
    assert {problem["field"] for problem in typed["errors"]} >= {"name", "colour", "source"}
    assert client.get("/api/preparations").json() == []  # nothing was created


def test_starting_the_worker_names_every_bad_field(admin_server: AdminServer) -> None:
    client = admin_server.client()
    body = bad_request(
        client.post("/api/dataset-worker/start", json={"concurrency": 0, "minInterval": "5x"})
    )
    assert [problem["field"] for problem in body["errors"]] == ["concurrency", "minInterval"]
    assert body["errors"][0]["message"] == "concurrency must be between 1 and 64, got 0"
    assert body["errors"][1]["message"].startswith("minInterval is not a Go duration")
    # The fields the page and scripts read before are unchanged.
    assert body["error"] == "concurrency must be between 1 and 64, got 0 (and 1 more problem)"
    assert [problem["field"] for problem in body["detail"]] == ["concurrency", "minInterval"]
    assert not client.get("/api/dataset-worker/status").json()["running"]

    query = bad_request(client.post("/api/dataset-worker/stop", params={"timeout": "-1"}))
    assert [problem["field"] for problem in query["errors"]] == ["timeout"]

    # A rule across fields has no single field; its message names both.
    order = bad_request(client.post("/api/dataset-worker/start", json={"minInterval": "9m"}))
    assert order["errors"] == [{"field": None, "message": order["error"]}]

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"]["errors"]["anyOf"][0]["items"] == {
        "$ref": "#/components/schemas/FieldError"
    }
    assert set(schemas["FieldError"]["properties"]) == {"field", "message"}
