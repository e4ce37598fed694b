"""Named storages through the real CLI (`dataset-worker storage …`) and the real admin server
(`/api/storages`): create, list, show, check, delete; secrets refused or masked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from dataset_worker.cli import app
from dataset_worker.db import Database
from tests.integration.api_support import AdminServer
from tests.support.jobs import make_local_preparation
from tests.support.s3servers import S3Server
from tests.support.sshd import SshServer

Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    """Invoke the CLI with this test's state dir and database."""
    runner = CliRunner()
    root = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url]
    return lambda *args: runner.invoke(app, [*root, *args])


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_create_list_show_check_delete(run: Run, s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client.put_object(Bucket=bucket, Key="pre/d/a.txt", Body=b"hello")
    created = _json(
        run("storage", "create", "lake", f"s3://{bucket}/pre/", "--endpoint", s3_server.endpoint,
            "--region", "us-east-1", "--option", "max_attempts=2", "--json")
    )  # fmt: skip
    assert created["type"] == "s3" and created["path"] == f"s3://{bucket}/pre"
    assert created["config"] == {
        "endpoint": s3_server.endpoint,
        "region": "us-east-1",
        "max_attempts": "2",
    }
    folder = tmp_path / "folder"
    folder.mkdir()
    assert _json(run("storage", "create", "disk", str(folder), "--json"))["type"] == "local"

    listed = _json(run("storage", "list", "--json"))
    assert [s["name"] for s in listed] == ["lake", "disk"]
    assert _json(run("storage", "show", "lake", "--json"))["preparations"] == []

    check = _json(run("storage", "check", "lake", "--json"))
    assert check == {"name": "lake", "ok": True, "message": f"s3://{bucket}/pre is readable",
                     "sample": ["d/", "d/a.txt"]}  # fmt: skip

    assert run("storage", "create", "lake", str(folder)).exit_code == 1  # duplicate name
    deleted = run("storage", "delete", "lake")
    assert deleted.exit_code == 0 and 'deleted storage "lake"' in deleted.stdout
    missing = run("storage", "show", "lake")
    assert missing.exit_code == 1 and 'storage "lake" does not exist' in missing.output


def test_cli_check_fails_on_a_missing_bucket(run: Run, s3_server: S3Server) -> None:
    run("storage", "create", "gone", "s3://dw-missing-bucket", "--endpoint", s3_server.endpoint,
        "--option", "max_attempts=1")  # fmt: skip
    result = run("storage", "check", "gone")
    assert result.exit_code == 1
    assert 'storage "gone": FAILED: listing s3://dw-missing-bucket/ failed' in result.stdout
    assert "scan" not in result.stdout  # a check scans nothing: say what failed, not more


def test_cli_check_says_when_credentials_are_missing(
    run: Run, moto_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # boto3 would ask the EC2 metadata address next: nothing may leave 127.0.0.1.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bucket = moto_server.new_bucket()
    # A connect timeout no other test uses: a client of its own (clients are cached by config,
    # and a cached one would still hold the credentials it was made with).
    created = run("storage", "create", "nokeys", f"s3://{bucket}", "--endpoint",
                  moto_server.endpoint, "--option", "connect_timeout=17")  # fmt: skip
    assert created.exit_code == 0, created.output
    result = run("storage", "check", "nokeys")
    assert result.exit_code == 1
    assert f"listing s3://{bucket}/ failed: no S3 credentials found" in result.stdout
    assert "AWS_ACCESS_KEY_ID" in result.stdout and "docs/operations.md" in result.stdout
    assert "scan" not in result.stdout


def test_cli_secrets_are_refused_or_masked(run: Run) -> None:
    refused = run("storage", "create", "s", "s3://b", "--option", "secret_access_key=TOPSECRET")
    assert refused.exit_code == 1
    assert 'options: S3 config key "secret_access_key" holds a secret' in refused.output
    shown = _json(
        run("storage", "create", "s", "s3://b", "--option", "access_key_id=AKIAEXAMPLE",
            "--option", "secret_access_key=TOPSECRET", "--allow-secret-in-db", "--json")
    )  # fmt: skip
    assert shown["config"] == {"access_key_id": "***", "secret_access_key": "***"}
    text = run("storage", "show", "s")
    assert "TOPSECRET" not in text.output and "secret_access_key = ***" in text.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("x", "relative/path"),
            'url: url "relative/path" must be s3://bucket/prefix, sftp://host/path or an',
        ),
        (("x", "ftp://host/p"), 'url: url scheme "ftp://" is not supported'),
        (("x", "s3://"), 'url: S3 path "s3://" has no bucket name'),
        (("x", "/tmp", "--region", "r"), "region: region applies to s3:// storages only"),
        (("123", "/tmp"), 'name: name "123" must not be all digits'),
        (("x", "s3://b", "--option", "part_sise=1"), 'unknown S3 config key "part_sise"'),
        (("x", "s3://b", "--option", "part_size=12"), '"part_size" must be between'),
        (("x", "s3://b", "--option", "novalue"), '--option "novalue" must be KEY=VALUE'),
    ],
)
def test_cli_bad_input_names_the_field(run: Run, args: tuple[str, ...], message: str) -> None:
    result = run("storage", "create", *args)
    assert result.exit_code == 1
    assert message in result.output


def test_cli_delete_refuses_a_storage_in_use(run: Run, db: Database, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    make_local_preparation(db, "p1", tmp_path / "src", tmp_path / "out")
    result = run("storage", "delete", "p1-source")
    assert result.exit_code == 1
    assert 'storage "p1-source" is used by preparation(s) p1' in result.output
    assert _json(run("storage", "show", "p1-source", "--json"))["preparations"] == ["p1"]


def test_api_storages(admin_server: AdminServer, s3_server: S3Server) -> None:
    client = admin_server.client()
    bucket = s3_server.new_bucket()
    s3_server.client.put_object(Bucket=bucket, Key="k.txt", Body=b"x")
    body = {"name": "api-lake", "url": f"s3://{bucket}", "endpoint": s3_server.endpoint,
            "options": {"access_key_id": "AKIA", "secret_access_key": "TOPSECRET"}}  # fmt: skip
    refused = client.post("/api/storages", json=body)
    assert refused.status_code == 400
    assert "holds a secret" in refused.text and "TOPSECRET" not in refused.text
    body["options"] = {}
    created = client.post("/api/storages", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["config"] == {"endpoint": s3_server.endpoint}
    assert client.post("/api/storages", json=body).status_code == 409
    bad = client.post("/api/storages", json={"name": "x", "url": "nope"})
    assert bad.status_code == 400 and "url" in bad.text
    assert [s["name"] for s in client.get("/api/storages").json()] == ["api-lake"]
    check = client.post("/api/storages/api-lake/check").json()
    assert check["ok"] is True and check["sample"] == ["k.txt"]
    assert client.delete("/api/storages/api-lake").status_code == 200
    assert client.get("/api/storages/api-lake").status_code == 404


def test_cli_sftp_storage(run: Run, ssh_server: SshServer) -> None:
    folder = ssh_server.home / "named"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "sub" / "f.txt").write_text("x")
    key, known = str(ssh_server.key_file), str(ssh_server.known_hosts)
    created = _json(
        run("storage", "create", "box", ssh_server.url(folder), "--option", f"key_file={key}",
            "--option", f"known_hosts={known}", "--json")
    )  # fmt: skip
    assert created["type"] == "sftp" and created["config"]["key_file"] == key
    check = _json(run("storage", "check", "box", "--json"))
    assert check["ok"] is True and check["sample"] == ["sub/", "sub/f.txt"]
    refused = run("storage", "create", "box2", ssh_server.url(folder), "--option", "password=pw")
    assert refused.exit_code == 1 and '"password" holds a secret' in refused.output
