"""`prep create --source NAME[:/sub/path] --output NAME[:/path]`: preparations over named
storages (an S3 bucket on moto or rclone, a local folder), through the real CLI and server,
then prepared by the real job bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from dataset_worker.cli import app
from dataset_worker.db import Database
from dataset_worker.db.models import SourceAttachment, Storage
from tests.integration.api_support import AdminServer, start_worker
from tests.support.jobs import write_files
from tests.support.s3servers import S3Server
from tests.support.storages import run_all
from tests.support.wait import wait_until

Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    """Invoke the CLI with this test's state dir and database."""
    runner = CliRunner()
    root = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url]
    return lambda *args: runner.invoke(app, [*root, *args])


def _ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else None


def _storages(db: Database, prep: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    with db.read() as session:
        rows = session.execute(
            select(Storage.name, Storage.type, Storage.path, Storage.config).where(
                Storage.name.in_([f"{prep}-source", f"{prep}-output"])
            )
        ).all()
    return {name.rsplit("-", 1)[1]: (kind, path, config) for name, kind, path, config in rows}


def test_cli_prep_over_named_storages_runs_end_to_end(
    run: Run, db: Database, s3_server: S3Server, tmp_path: Path
) -> None:
    write_files(tmp_path / "tree", {"a.bin": 300_000, "d/b.txt": b"bee"})
    bucket = s3_server.new_bucket()
    s3_server.put_tree(bucket, tmp_path / "tree", "pre/dataset/")
    disk = tmp_path / "disk"
    disk.mkdir()
    _ok(run("storage", "create", "lake", f"s3://{bucket}/pre", "--endpoint", s3_server.endpoint))
    _ok(run("storage", "create", "disk", str(disk)))

    _ok(run("prep", "create", "--name", "p1", "--source", "lake:/dataset", "--output",
            "disk:/cars", "--no-auto", "--json"))  # fmt: skip
    config = {"endpoint": s3_server.endpoint}
    assert _storages(db, "p1") == {
        "source": ("s3", f"s3://{bucket}/pre/dataset", config),
        "output": ("local", str(disk / "cars"), {}),
    }
    _ok(run("prep", "create", "--name", "p2", "--source", "lake:/dataset", "--output",
            "lake:/cars", "--no-auto", "--json"))  # fmt: skip
    assert _storages(db, "p2")["output"] == ("s3", f"s3://{bucket}/pre/cars", config)

    with db.read() as session:
        attachments = dict(
            session.execute(
                select(Storage.name, SourceAttachment.id).join(
                    SourceAttachment, SourceAttachment.storage_id == Storage.id
                )
            ).all()
        )
    for name in ("p1-source", "p2-source"):
        assert all(r.error is None for r in run_all(db, attachments[name]))
    local_cars = sorted(p.name for p in (disk / "cars").iterdir())
    remote_cars = sorted(k.rsplit("/", 1)[1] for k in s3_server.keys(bucket, "pre/cars/"))
    assert local_cars == remote_cars and len(local_cars) == 2  # one data piece, one DAG piece
    shown = _ok(run("storage", "show", "lake", "--json"))
    assert shown["preparations"] == []  # the preparations use their own copies


@pytest.mark.parametrize(
    ("source", "output", "message"),
    [
        ("nosuch:/x", "/tmp/out", 'source "nosuch:/x" names no storage'),
        ("lake:/a/../b", "/tmp/out", 'source sub path "/a/../b" must not contain'),
        ("lake:/data", "lake:/data/cars", "must not be the source or inside it"),
    ],
)
def test_cli_bad_references_are_refused(
    run: Run, s3_server: S3Server, source: str, output: str, message: str
) -> None:
    _ok(run("storage", "create", "lake", "s3://some-bucket", "--endpoint", s3_server.endpoint))
    result = run("prep", "create", "--name", "bad", "--source", source, "--output", output)
    assert result.exit_code == 1
    assert message in result.output


def test_api_prep_over_named_storages(
    admin_server: AdminServer, s3_server: S3Server, tmp_path: Path
) -> None:
    client = admin_server.client()
    bucket = s3_server.new_bucket()
    body = {"name": "lake", "url": f"s3://{bucket}", "endpoint": s3_server.endpoint}
    assert client.post("/api/storages", json=body).status_code == 201
    reply = client.post(
        "/api/preparations",
        json={"name": "web", "source": "lake:/in", "output": str(tmp_path / "cars")},
    )
    assert reply.status_code == 201, reply.text
    sources = {s["name"]: s for s in reply.json()["sourceStorages"]}
    assert sources["web-source"]["type"] == "s3"
    assert sources["web-source"]["path"] == f"s3://{bucket}/in"
    refused = client.post(
        "/api/preparations", json={"name": "web2", "source": "nosuch", "output": "/tmp/x"}
    )
    assert refused.status_code == 400 and 'source \\"nosuch\\" names no storage' in refused.text


@pytest.mark.slow
def test_worker_process_prepares_from_and_to_s3(
    s3_server: S3Server, admin_server: AdminServer, tmp_path: Path
) -> None:
    """The real worker process, started by the real server, over a bucket: the same pieces and
    root CID as the same tree in a folder."""
    client = admin_server.client()
    write_files(tmp_path / "tree", {"big.bin": 2_500_000, "a/b.txt": b"b", "a/c.bin": 70_000})
    bucket = s3_server.new_bucket()
    s3_server.put_tree(bucket, tmp_path / "tree", "in/")
    storage = {"name": "lake", "url": f"s3://{bucket}", "endpoint": s3_server.endpoint}
    assert client.post("/api/storages", json=storage).status_code == 201
    for name, source, output in [
        ("remote", "lake:/in", "lake:/cars"),
        ("local", str(tmp_path / "tree"), str(tmp_path / "cars")),
    ]:
        body = {"name": name, "source": source, "output": output, "maxSize": "1000KiB"}
        reply = client.post("/api/preparations", json=body)
        assert reply.status_code == 201, reply.text
    start_worker(client, concurrency=2)

    def root(name: str) -> str:
        return str(client.get(f"/api/preparations/{name}").json()["rootCid"] or "")

    try:
        wait_until(lambda: root("remote") and root("local"), 120, "both preparations to finish")
    except AssertionError:
        print(client.get("/api/dataset-worker/jobs").json())  # what was left, for the report
        print(client.get("/api/dataset-worker/logs", params={"tail": 40}).json())
        raise
    assert root("remote") == root("local")

    def pieces(name: str) -> list[tuple[str, str, int]]:
        rows = client.get(f"/api/preparations/{name}/pieces").json()
        return sorted((p["pieceType"], p["pieceCid"], p["fileSize"]) for p in rows)

    assert pieces("remote") == pieces("local") and len(pieces("local")) >= 4
    remote_cars = sorted(k.removeprefix("cars/") for k in s3_server.keys(bucket, "cars/"))
    assert remote_cars == sorted(p.name for p in (tmp_path / "cars").iterdir())
