"""The README workflow through a real server and the real worker: create a preparation, start the
worker, watch status, logs and jobs, stop it, list the pieces; plus the audit log and metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.api_support import (
    AdminServer,
    create_preparation,
    make_source,
    start_worker,
)
from tests.support.wait import wait_until

KIB = 1024


def test_readme_workflow(admin_server: AdminServer, tmp_path: Path) -> None:
    client = admin_server.client()
    source = make_source(
        tmp_path / "source",
        {"a.txt": 10 * KIB, "dir/b.bin": 300 * KIB, "dir/sub/c.bin": 1200 * KIB, "empty": 0},
    )
    # Every step by hand, as the README's manual workflow (the auto chain: test_api_operations).
    prep = create_preparation(
        client, "photos", source, tmp_path / "cars", maxSize="1000KiB", noAuto=True
    )
    assert prep["name"] == "photos" and prep["maxSize"] == 1000 * KIB
    assert [p["name"] for p in client.get("/api/preparations").json()] == ["photos"]
    scan = client.post("/api/preparations/photos/start-scan")
    assert scan.status_code == 200 and scan.json()["state"] == "ready"

    pid = start_worker(client, concurrency=2, exitOnComplete=False)
    status = client.get("/api/dataset-worker/status").json()
    assert status["running"] is True and status["pid"] == pid and status["state"] == "running"
    assert status["config"]["concurrency"] == 2 and status["config"]["enablePack"] is True
    started = datetime.fromisoformat(status["startTime"].replace("Z", "+00:00"))
    assert started.tzinfo is not None and abs((datetime.now(UTC) - started).total_seconds()) < 60
    assert status["uptime"].endswith("s")

    def packs_done() -> bool:
        page = client.get("/api/dataset-worker/jobs", params={"type": "pack"}).json()
        return bool(page["jobs"]) and all(j["status"] == "complete" for j in page["jobs"])

    wait_until(packs_done, 120, "every pack job to complete")
    jobs = client.get("/api/dataset-worker/jobs").json()["jobs"]
    assert [j["id"] for j in jobs] == sorted((j["id"] for j in jobs), reverse=True)
    assert {j["type"] for j in jobs} == {"scan", "pack"}
    assert all(j["preparation"] == "photos" and j["error"] is None for j in jobs)
    assert all(j["started"] and j["finished"] for j in jobs if j["status"] == "complete")
    done = client.get("/api/dataset-worker/jobs", params={"status": "complete", "limit": 1}).json()
    assert len(done["jobs"]) == 1 and done["nextCursor"] is not None

    daggen = client.post("/api/preparations/photos/start-daggen")
    assert daggen.status_code == 200
    wait_until(
        lambda: client.get("/api/preparations/photos").json()["rootCid"],
        120,
        "the daggen job to give the preparation a root CID",
    )
    wait_until(
        lambda: client.get("/api/preparations/photos").json()["stage"] == "done",
        120,
        "the daggen job to complete",
    )
    # A done DAG is built again only on purpose: 409 without force, naming the job's state.
    again = client.post("/api/preparations/photos/start-daggen")
    assert again.status_code == 409, again.text
    assert "is already done (state complete)" in again.json()["error"]

    logs = client.get("/api/dataset-worker/logs").json()
    assert logs["pid"] == pid and logs["running"] is True
    assert "worker.start" in logs["stdout"]
    tail = client.get("/api/dataset-worker/logs", params={"tail": 2, "stream": "stdout"}).json()
    assert tail["stdout"].count("\n") <= 2 and tail["stderr"] == ""

    stopped = client.post("/api/dataset-worker/stop")
    assert stopped.status_code == 200
    assert stopped.json() == {
        "status": "stopped",
        "pid": pid,
        "exitCode": 130,
        "signal": None,
        "forced": False,
        "jobsReleased": 0,
    }
    status = client.get("/api/dataset-worker/status").json()
    assert status["running"] is False and status["pid"] is None
    assert status["lastRun"]["pid"] == pid and status["lastRun"]["exitCode"] == 130
    assert client.get("/api/dataset-worker/logs").json()["running"] is False

    pieces = client.get("/api/preparations/photos/pieces").json()
    data = [p for p in pieces if p["pieceType"] == "data"]
    assert data and all(p["pieceCid"].startswith("baga") for p in data)
    assert all((tmp_path / "cars" / p["storagePath"]).is_file() for p in pieces)
    summary = client.get("/api/preparations/photos").json()
    assert summary["bytesPacked"] == summary["bytesScanned"] == (10 + 300 + 1200) * KIB

    audit = client.get("/api/dataset-worker/audit").json()["entries"]
    assert [e["action"] for e in audit] == ["stop", "start"]
    assert audit[1]["config"]["concurrency"] == 2 and audit[1]["result"]["pid"] == pid
    assert audit[0]["result"]["exitCode"] == 130 and audit[0]["remote"] == "127.0.0.1"

    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.text)
        for s in family.samples
    }
    assert samples[("dataset_worker_worker_up", ())] == 0
    assert samples[("dataset_worker_worker_last_exit_code", ())] == 130
    assert samples[("dataset_worker_worker_starts_total", ())] == 1
    assert samples[("dataset_worker_jobs", (("state", "complete"), ("type", "pack")))] == len(data)
    assert samples[("dataset_worker_bytes_packed", (("preparation", "photos"),))] == 1510 * KIB

    # With force it is queued again (the worker is stopped: it stays queued).
    forced = client.post("/api/preparations/photos/start-daggen", params={"force": "true"})
    assert forced.status_code == 200 and forced.json()["state"] == "ready"
