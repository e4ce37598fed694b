"""GET /api/preparations/{name}/manifest through the real server, after the real worker process
prepared a tree (the auto chain: scan, pack, daggen)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx

from tests.integration.api_support import (
    AdminServer,
    create_preparation,
    make_source,
    start_worker,
)
from tests.support.manifest import file_entries, sha256_hex, validate_super_manifest
from tests.support.wait import wait_until

KIB = 1024
META = {
    "description": "Test tree",
    "license": "Apache-2.0",
    "projectUrl": "https://example.org",
    "openWith": "any file browser",
}


def _prepared(client: httpx.Client, tmp_path: Path) -> Path:
    files = {"a.txt": 10 * KIB, "dir/big.bin": 700 * KIB, "dir/sub/é.json": 20, "empty": 0}
    source = make_source(tmp_path / "source", files)
    create_preparation(
        client, "tree", source, tmp_path / "cars", maxSize="300KB", minPieceSize="512KiB"
    )
    start_worker(client, concurrency=2)

    def dag_done() -> bool:
        jobs = client.get("/api/preparations/tree").json()["jobs"]
        return bool(jobs["daggen"]["complete"]) and not jobs["pack"]["ready"]

    wait_until(dag_done, 120, "the DAG piece")
    return source


def _manifest(client: httpx.Client, **params: Any) -> httpx.Response:
    return client.get("/api/preparations/tree/manifest", params=params)


def test_manifest_formats_and_errors(admin_server: AdminServer, tmp_path: Path) -> None:
    client = admin_server.client()
    source = _prepared(client, tmp_path)
    pieces = client.get("/api/preparations/tree/pieces").json()

    reply = _manifest(client, format="super-manifest", tag=["a", "b"], **META)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    manifest = reply.json()
    validate_super_manifest(manifest)
    assert manifest["tags"] == ["a", "b"] and manifest["name"] == "tree"
    assert [(p["piece_cid"], p["payload_cid"]) for p in manifest["pieces"]] == [
        (p["pieceCid"], p["rootCid"]) for p in pieces
    ]
    entries = dict(file_entries(manifest["contents"]))
    assert set(entries) == {"a.txt", "dir/big.bin", "dir/sub/é.json", "empty"}
    assert all(entry["hash"] == sha256_hex(source / path) for path, entry in entries.items())

    # Remembered: the second export needs no description.
    again = _manifest(client)
    assert again.status_code == 200 and again.json()["uuid"] == manifest["uuid"]

    table = _manifest(client, format="csv", publicUrl="https://sp.example")
    assert table.status_code == 200
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(table.text)))
    assert rows[0] == ["pieceCid", "pieceSize", "payloadCid", "carSize", "url", "pieceCidV2"]
    assert [row[0] for row in rows[1:]] == [p["pieceCid"] for p in pieces]
    assert [row[5] for row in rows[1:]] == [p["pieceCidV2"] for p in pieces]
    assert rows[1][4] == f"https://sp.example/piece/{pieces[0]['pieceCid']}"
    v2_urls = _manifest(client, format="csv", publicUrl="https://sp.example", pieceCidVersion=2)
    assert v2_urls.status_code == 200, v2_urls.text
    rows = list(csv.reader(io.StringIO(v2_urls.text)))
    assert rows[1][4] == f"https://sp.example/piece/{pieces[0]['pieceCidV2']}"
    assert pieces[0]["pieceCidV2"].startswith("bafkzcib")
    bad_version = _manifest(client, format="csv", pieceCidVersion=3)
    assert bad_version.status_code == 400
    assert "pieceCidVersion must be 1 or 2" in bad_version.json()["error"]

    export = _manifest(client, format="json")
    assert export.status_code == 200 and export.json()["preparation"]["fileHash"] is True

    bad = _manifest(client, format="yaml")
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("format must be one of super-manifest, json, csv")
    license_error = _manifest(client, license="no such thing!")
    assert license_error.status_code == 400 and "license" in license_error.json()["error"]
    missing = client.get("/api/preparations/nope/manifest")
    assert missing.status_code == 404


def test_a_first_super_manifest_needs_its_description(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    client = admin_server.client()
    _prepared(client, tmp_path)
    reply = _manifest(client)
    assert reply.status_code == 400
    assert "description, license, projectUrl, openWith" in reply.json()["error"]
