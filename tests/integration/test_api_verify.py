"""POST /api/preparations/{name}/verify through the real server, on a tree the real worker
process prepared: a clean tree verifies clean, a corrupted CAR is named in the problems, one
verification at a time per preparation (the lock is a file: the test holds it like another server
process would), and records survive in the state dir."""

from __future__ import annotations

import fcntl
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.integration.api_support import (
    AdminServer,
    create_preparation,
    make_source,
    start_worker,
)
from tests.support.wait import wait_until

KIB = 1024


def _prepared(client: httpx.Client, tmp_path: Path) -> Path:
    """Prepare a small tree with the worker; the folder of its CAR files."""
    files = {"a.txt": 10 * KIB, "dir/big.bin": 700 * KIB, "dir/sub/é.json": 20, "empty": 0}
    source = make_source(tmp_path / "source", files)
    cars = tmp_path / "cars"
    create_preparation(client, "tree", source, cars, maxSize="300KB", minPieceSize="512KiB")
    start_worker(client, concurrency=2)

    def dag_done() -> bool:
        jobs = client.get("/api/preparations/tree").json()["jobs"]
        return bool(jobs["daggen"]["complete"]) and not jobs["pack"]["ready"]

    wait_until(dag_done, 120, "the DAG piece")
    return cars


def _finished(client: httpx.Client, verification_id: str) -> dict[str, Any]:
    """Poll the verification until it is no longer running."""

    def done() -> dict[str, Any] | None:
        reply = client.get(f"/api/preparations/tree/verify/{verification_id}")
        assert reply.status_code == 200, reply.text
        record: dict[str, Any] = reply.json()
        return None if record["state"] == "running" else record

    finished: dict[str, Any] = wait_until(done, 120, "the verification")
    return finished


def test_verify_clean_then_a_corrupted_car(admin_server: AdminServer, tmp_path: Path) -> None:
    client = admin_server.client()
    cars = _prepared(client, tmp_path)

    started = client.post("/api/preparations/tree/verify", json={"deep": True})
    assert started.status_code == 202, started.text
    assert started.json()["state"] == "running" and started.json()["deep"] is True
    record = _finished(client, started.json()["id"])
    assert record["state"] == "clean", record
    assert record["report"]["ok"] is True
    assert record["report"]["summary"]["piecesChecked"] == len(list(cars.glob("*.car")))
    assert record["report"]["summary"]["files"] == 4
    assert record["progress"]["stage"] and record["finishedAt"]

    car = max(cars.glob("*.car"), key=lambda path: path.stat().st_size)
    data = bytearray(car.read_bytes())
    data[len(data) // 2] ^= 0xFF
    car.write_bytes(bytes(data))
    started = client.post("/api/preparations/tree/verify", json={})
    assert started.status_code == 202, started.text
    record = _finished(client, started.json()["id"])
    assert record["state"] == "problems"
    assert record["report"]["ok"] is False
    assert any(problem.get("carPath") == str(car) for problem in record["report"]["problems"])

    latest = client.get("/api/preparations/tree/verify")
    assert latest.status_code == 200 and latest.json()["id"] == started.json()["id"]
    by_other_path = client.get(f"/api/preparations/tree/verifications/{started.json()['id']}")
    assert by_other_path.json()["state"] == "problems"
    stored = admin_server.state_dir / "verifications"
    assert len(list(stored.glob("*/*.json"))) == 2  # kept in the state dir, across restarts


def test_one_verification_at_a_time_and_bad_requests(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    client = admin_server.client()
    _prepared(client, tmp_path)
    assert client.get("/api/preparations/tree/verify").json() is None
    prep_id = client.get("/api/preparations/tree").json()["id"]
    lock_path = admin_server.state_dir / "verifications" / f"{prep_id}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # as a server process running one would
        busy = client.post("/api/preparations/tree/verify", json={"deep": False})
        assert busy.status_code == 409, busy.text
        assert "already running" in busy.json()["error"]
    started = client.post("/api/preparations/tree/verify")
    assert started.status_code == 202
    assert _finished(client, started.json()["id"])["state"] == "clean"

    bad_deep = client.post("/api/preparations/tree/verify", json={"deep": "maybe"})
    assert bad_deep.status_code == 400
    assert bad_deep.json()["errors"][0]["field"].endswith("deep")
    extra = client.post("/api/preparations/tree/verify", json={"depth": 3})
    assert extra.status_code == 400
    assert client.post("/api/preparations/nope/verify").status_code == 404
    unknown = client.get("/api/preparations/tree/verify/0123456789abcdef0123456789abcdef")
    assert unknown.status_code == 404 and "no verification" in unknown.json()["error"]
    assert client.get("/api/preparations/tree/verify/..%2F..%2Fadmin-token").status_code == 404


def test_a_record_left_running_by_a_stopped_process_reads_as_failed(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    client = admin_server.client()
    create_preparation(client, "tree", make_source(tmp_path / "s", {"a": 1}), tmp_path / "o")
    [prep] = [p for p in client.get("/api/preparations").json() if p["name"] == "tree"]
    prep_id = prep["id"]
    folder = admin_server.state_dir / "verifications" / str(prep_id)
    folder.mkdir(parents=True)
    stale_id = "ab" * 16
    preparation = {"id": prep_id, "name": "tree", "createdAt": created_at(prep)}
    record = {
        "id": stale_id,
        "preparation": preparation,
        "deep": False,
        "state": "running",
        "startedAt": "2026-01-01T00:00:00+00:00",
        "finishedAt": None,
        "progress": None,
        "report": None,
        "error": None,
    }
    (folder / f"{stale_id}.json").write_text(json.dumps(record))
    reply = client.get(f"/api/preparations/tree/verify/{stale_id}")
    assert reply.status_code == 200
    assert reply.json()["state"] == "failed"
    assert "stopped before it finished" in reply.json()["error"]

    # A record of an earlier preparation that had the same id is not this one's.
    preparation["createdAt"] = "2020-01-01T00:00:00+00:00"
    (folder / f"{stale_id}.json").write_text(json.dumps(record))
    assert client.get(f"/api/preparations/tree/verify/{stale_id}").status_code == 404
    assert client.get("/api/preparations/tree/verify").json() is None


def created_at(prep: dict[str, Any]) -> str:
    """The preparation's creation time as the server writes it in records."""
    return datetime.fromisoformat(prep["createdAt"].replace("Z", "+00:00")).isoformat()
