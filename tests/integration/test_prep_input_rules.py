"""Input rules of preparations, through the real server and the real CLI on SQLite and
PostgreSQL: piece-size floors, names, whole-byte sizes, absolute paths over HTTP, 409 for a
start of a job that is already queued, and untrusted names and paths printed literally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from typer.testing import CliRunner, Result

from dataset_worker.cli import app
from dataset_worker.db import Database
from dataset_worker.db.models import Preparation
from tests.integration.api_support import AdminServer, make_source


def _post(server: AdminServer, **fields: Any) -> Any:
    return server.client().post("/api/preparations", json=fields)


def _body(folder: Path, tmp_path: Path, fields: dict[str, Any]) -> dict[str, Any]:
    body = {"name": "p1", "source": str(folder), "output": str(tmp_path / "out")}
    return {**body, **fields}


BAD_FIELDS: list[tuple[dict[str, object], str, str]] = [
    ({"minPieceSize": "64B"}, "minPieceSize", "minPieceSize must be at least 128 bytes, got 64"),
    ({"pieceSize": "64", "minPieceSize": "64", "maxSize": "10"}, "pieceSize",
     "pieceSize must be at least 128 bytes, got 64"),
    ({"maxSize": "64"}, "maxSize", "maxSize must be at least 65 bytes, got 64"),
    ({"maxSize": 10**30}, "maxSize", "maxSize must be at most 68182605823 bytes"),
    ({"maxSize": "1.5"}, "maxSize", 'maxSize: invalid size "1.5": 1.5 bytes is not a whole'),
    ({"name": "my photos"}, "name", "name contains ' ', which is not allowed: a name is 1 to 64"),
    ({"name": "x[red]y"}, "name", "name contains '[', ']', which is not allowed"),
    ({"name": ".p"}, "name", 'name ".p" must not start with "."'),
    ({"name": "12"}, "name", 'name "12" must not be all digits'),
    ({"name": "n" * 65}, "name", "name must be at most 64 characters, got 65"),
    ({"source": "."}, "source", 'source must be an absolute path, got "."'),
    ({"output": "out/cars"}, "output", 'output must be an absolute path, got "out/cars"'),
]  # fmt: skip


def test_create_refuses_bad_input_naming_the_field_and_the_rule(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    source = make_source(tmp_path / "src", {"a": 10})
    for fields, field, message in BAD_FIELDS:
        reply = _post(admin_server, **_body(source, tmp_path, fields))
        assert reply.status_code == 400, (fields, reply.text)
        assert message in reply.json()["error"], fields
        assert reply.json()["errors"][0]["field"] == field, fields
    assert admin_server.client().get("/api/preparations").json() == []
    assert not (tmp_path / "out").exists()


def test_a_second_start_of_a_queued_job_is_a_409_naming_its_state(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    client = admin_server.client()
    source = make_source(tmp_path / "src", {"a": 10})
    created = _post(admin_server, **_body(source, tmp_path, {"noAuto": True}))
    assert created.status_code == 201, created.text
    for step in ("scan", "daggen"):
        first = client.post(f"/api/preparations/p1/start-{step}")
        assert first.status_code == 200 and first.json()["state"] == "ready"
        again = client.post(f"/api/preparations/p1/start-{step}")
        assert again.status_code == 409, again.text
        job = first.json()["id"]
        assert again.json()["error"] == (
            f'{step} job {job} of preparation "p1" is already queued (state ready)'
        )
    documented = client.get("/openapi.json").json()["paths"]
    for step in ("scan", "daggen"):
        assert "409" in documented[f"/api/preparations/{{name}}/start-{step}"]["post"]["responses"]


# --- the same rules from the command line -----------------------------------------------------------


def _cli(database_url: str, tmp_path: Path, *args: str) -> Result:
    root = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url]
    return CliRunner().invoke(app, [*root, *args])


def test_cli_refuses_a_min_piece_size_below_128_bytes(database_url: str, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src", {"a": 10})
    result = _cli(database_url, tmp_path, "prep", "create", "--name", "p", "--source", str(source),
                  "--output", str(tmp_path / "out"), "--min-piece-size", "64B")  # fmt: skip
    assert result.exit_code == 1
    assert "minPieceSize must be at least 128 bytes, got 64: the smallest Filecoin piece is " \
        "128 bytes (127 bytes of data after Fr32 padding)" in result.stderr  # fmt: skip
    assert _cli(database_url, tmp_path, "prep", "list", "--json").stdout.strip() == "[]"


def test_cli_resolves_relative_folders_against_its_working_directory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(tmp_path / "src", {"a": 10})
    monkeypatch.chdir(tmp_path)
    result = _cli(database_url, tmp_path, "prep", "create", "--name", "p", "--source", "src",
                  "--output", "out", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out").is_dir()
    listed = _cli(database_url, tmp_path, "prep", "list", "--json").stdout
    assert f'"path": "{tmp_path / "src"}"' in listed and f'"path": "{tmp_path / "out"}"' in listed


def test_cli_prints_folder_names_literally_not_as_markup(database_url: str, tmp_path: Path) -> None:
    source = make_source(tmp_path / "[bold]src[/bold]", {"a": 10})
    out = tmp_path / "out [red]x[/red]"
    result = _cli(database_url, tmp_path, "prep", "create", "--name", "p", "--source",
                  str(source), "--output", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"source: {source}" in result.stdout and f"output: {out}" in result.stdout
    listed = _cli(database_url, tmp_path, "prep", "list")
    assert listed.exit_code == 0 and "[bold]src[/bold]" in listed.stdout


def test_metrics_labels_escape_an_older_unusual_name(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    # Names made before the name rule may hold anything; the exposition format must survive them.
    source = make_source(tmp_path / "src", {"a": 10})
    assert _post(admin_server, **_body(source, tmp_path, {})).status_code == 201
    odd = 'we"ird\nname\\x'
    db = Database(admin_server.database_url)
    try:
        with db.write() as session:
            session.execute(update(Preparation).values(name=odd))
    finally:
        db.dispose()
    text = admin_server.client().get("/metrics").text
    labels = [
        sample.labels.get("preparation")
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name == "dataset_worker_bytes_scanned"
    ]
    assert labels == [odd]


def test_worker_durations_beyond_gos_range_are_400_naming_the_field(
    admin_server: AdminServer,
) -> None:
    client = admin_server.client()
    for field in ("minInterval", "maxInterval"):
        reply = client.post("/api/dataset-worker/start", json={field: "100000000h"})
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"].startswith(
            f'{field} is not a Go duration: invalid duration "100000000h": out of range'
        )
        assert reply.json()["errors"][0]["field"] == field
    assert client.get("/api/dataset-worker/status").json()["running"] is False
