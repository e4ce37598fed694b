"""Secrets stay out: an S3 secret in the environment of the server and its worker, and one stored
on purpose in a storage's config (refused without --allow-secret-in-db, accepted with it), never
appear in the server log, the worker's logs, the audit log, any storage reply or CLI output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner, Result

from dataset_worker.cli import app
from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType
from tests.integration.api_support import AdminServer, start_worker
from tests.support.jobs import write_files
from tests.support.s3servers import SECRET_KEY, S3Server
from tests.support.wait import wait_until

DB_SECRET = "PLANTED-db-secret-4f9c2a7e"  # moto does not check signatures: any key works
DB_KEY_ID = "AKIAPLANTEDKEYID0001"
SECRETS = (SECRET_KEY, DB_SECRET)


def _cli(database_url: str, state: Path, *args: str) -> Result:
    root = ["--state-dir", str(state), "--database-url", database_url]
    return CliRunner().invoke(app, [*root, *args])


def _all_jobs_complete(db: Database) -> bool:
    with db.read() as session:
        rows = session.execute(select(Job.type, Job.state)).all()
    assert not [r for r in rows if r.state is JobState.ERROR]
    types = {t for t, _ in rows}
    return {JobType.SCAN, JobType.PACK, JobType.DAGGEN} <= types and all(
        s is JobState.COMPLETE for _, s in rows
    )


def _grep(texts: dict[str, str]) -> list[str]:
    """Where any secret shows up: 'place: secret' lines (empty when clean)."""
    return [
        f"{place}: {secret}"
        for place, text in texts.items()
        for secret in SECRETS
        if secret in text
    ]


def test_secrets_never_show_in_logs_replies_or_cli_output(
    moto_server: S3Server, admin_server: AdminServer, db: Database, tmp_path: Path
) -> None:
    client = admin_server.client()
    url, cli_state = admin_server.database_url, tmp_path / "cli"
    bucket = moto_server.new_bucket()
    write_files(tmp_path / "tree", {"a.bin": 300_000, "d/b.txt": b"bee"})
    moto_server.put_tree(bucket, tmp_path / "tree", "in/")
    seen: dict[str, str] = {}
    secret_option = ["--option", f"secret_access_key={DB_SECRET}", "--option"]
    secret_option.append(f"access_key_id={DB_KEY_ID}")
    base = ["storage", "create", "vault", f"s3://{bucket}", "--endpoint", moto_server.endpoint]

    refused = _cli(url, cli_state, *base, *secret_option)
    assert refused.exit_code == 1
    assert 'config key "secret_access_key" holds a secret' in refused.output
    seen["cli create refused"] = refused.output
    body: dict[str, Any] = {
        "name": "lake",
        "url": f"s3://{bucket}",
        "endpoint": moto_server.endpoint,
        "options": {"access_key_id": DB_KEY_ID, "secret_access_key": DB_SECRET},
    }
    api_refused = client.post("/api/storages", json=body)
    assert api_refused.status_code == 400 and "holds a secret" in api_refused.text
    seen["api create refused"] = api_refused.text

    half = _cli(url, cli_state, *base, *secret_option[:2], "--allow-secret-in-db")
    assert half.exit_code == 1
    assert '"secret_access_key" needs "access_key_id" too' in half.output
    seen["cli create half a key"] = half.output
    accepted = _cli(url, cli_state, *base, *secret_option, "--allow-secret-in-db", "--json")
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout)["config"]["secret_access_key"] == "***"
    seen["cli create"] = accepted.output
    created = client.post("/api/storages", json={**body, "allowSecretInDb": True})
    assert created.status_code == 201, created.text
    assert created.json()["config"]["secret_access_key"] == "***"
    assert created.json()["config"]["access_key_id"] == "***"
    seen["api create"] = created.text

    # The worker reads and writes the bucket with the stored key (the prep copies the config).
    prep = client.post(
        "/api/preparations", json={"name": "sec", "source": "lake:/in", "output": "lake:/cars"}
    )
    assert prep.status_code == 201, prep.text
    seen["prep create"] = prep.text
    start_worker(client)
    wait_until(lambda: _all_jobs_complete(db), 90, "scan, pack and daggen to complete")
    assert [k for k in moto_server.keys(bucket, "cars/") if k.endswith(".car")]
    stopped = client.post("/api/dataset-worker/stop")
    assert stopped.status_code == 200, stopped.text

    for name in ("lake", "vault", "sec-source", "sec-output"):
        reply = client.get(f"/api/storages/{name}")
        assert reply.status_code == 200 and reply.json()["config"]["secret_access_key"] == "***"
        seen[f"GET /api/storages/{name}"] = reply.text
        check = client.post(f"/api/storages/{name}/check")
        assert check.status_code == 200 and check.json()["ok"], check.text
        seen[f"check {name}"] = check.text
        shown = _cli(url, cli_state, "storage", "show", name)
        assert shown.exit_code == 0 and "secret_access_key = ***" in shown.output, shown.output
        seen[f"cli show {name}"] = shown.output
    listing = client.get("/api/storages")
    assert listing.status_code == 200 and len(listing.json()) == 4
    seen["GET /api/storages"] = listing.text
    seen["cli list --json"] = _cli(url, cli_state, "storage", "list", "--json").output
    seen["GET /api/preparations/sec"] = client.get("/api/preparations/sec").text
    seen["worker logs reply"] = client.get("/api/dataset-worker/logs").text
    seen["audit reply"] = client.get("/api/dataset-worker/audit").text
    admin_server.shutdown()

    seen["server log"] = admin_server.log()
    state = admin_server.state_dir
    files = [p for p in state.rglob("*") if p.is_file() and p.suffix != ".db"]
    for path in files:
        seen[str(path.relative_to(state))] = path.read_text(errors="replace")
    assert any("audit.log" in name for name in seen) and any("logs/" in n for n in seen)
    assert "job.complete" in seen["worker logs reply"]  # the worker's output was captured
    assert _grep(seen) == []
