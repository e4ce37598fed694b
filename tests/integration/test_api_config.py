"""GET /api/config and `serve --public-url` through real server processes (one, and several
with --workers 2, which get the URL from the environment the first process sets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.api_support import AdminServer, start_server


def test_no_public_url_is_null(admin_server: AdminServer) -> None:
    reply = admin_server.client().get("/api/config")
    assert reply.status_code == 200
    assert reply.json()["publicUrl"] is None
    assert reply.json()["pieceCidVersion"] == 1
    assert admin_server.client(token=None).get("/api/config").status_code == 401


@pytest.mark.parametrize("workers", ["1", "2"])
def test_public_url_reaches_every_server_process(
    tmp_path: Path, database_url: str, workers: str
) -> None:
    args = (
        "--workers", workers, "--public-url", " https://pieces.example.org/base/ ",
        "--piece-cid-version", "2",
    )  # fmt: skip
    server = start_server(tmp_path / "state", database_url, extra_args=args)
    try:
        client = server.client()
        for _ in range(6):  # with two processes, either may answer each request
            config = client.get("/api/config").json()
            assert config["publicUrl"] == "https://pieces.example.org/base"
            assert config["pieceCidVersion"] == 2
    finally:
        server.shutdown()


def test_a_bad_piece_cid_version_is_refused(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "dataset_worker", "--state-dir", str(tmp_path / "state"),
        "serve", "--port", "9", "--piece-cid-version", "3",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--piece-cid-version must be 1 or 2, got 3" in done.stderr


@pytest.mark.parametrize(
    ("value", "words"),
    [("ftp://pieces.example.org", "http:// or https://"), ("https://x.org/?a=1", "query")],
)
def test_a_bad_public_url_is_refused(tmp_path: Path, value: str, words: str) -> None:
    command = [
        sys.executable, "-m", "dataset_worker", "--state-dir", str(tmp_path / "state"),
        "serve", "--port", "9", "--public-url", value,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--public-url" in done.stderr and words in done.stderr
