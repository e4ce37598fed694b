"""Every status code of docs/api.md#worker-endpoints, with its body shape, through a real server and worker."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.integration.api_support import (
    TOKEN,
    AdminServer,
    make_source,
    start_worker,
    wait_for_log,
)

PROTECTED = [
    ("POST", "/api/dataset-worker/start"),
    ("POST", "/api/dataset-worker/stop"),
    ("GET", "/api/dataset-worker/status"),
    ("GET", "/api/dataset-worker/logs"),
    ("GET", "/api/dataset-worker/logs/stream"),
    ("GET", "/api/dataset-worker/jobs"),
    ("GET", "/api/dataset-worker/audit"),
    ("GET", "/api/preparations"),
    ("POST", "/api/preparations"),
    ("GET", "/api/preparations/x"),
    ("POST", "/api/preparations/x/start-scan"),
    ("GET", "/api/preparations/x/pieces"),
    ("GET", "/metrics"),
]


def assert_error(reply: Any, status: int, *phrases: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    body: dict[str, Any] = reply.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "detail" in body
    for phrase in phrases:
        assert phrase in body["error"], body["error"]
    return body


def test_401_without_or_with_a_wrong_token(admin_server: AdminServer) -> None:
    anonymous, wrong = admin_server.client(None), admin_server.client("wrong-token")
    basic = admin_server.client(None)
    basic.headers["Authorization"] = f"Basic {TOKEN}"
    for method, path in PROTECTED:
        body = assert_error(anonymous.request(method, path, content=b"{not json"), 401, "token")
        assert body["error"].startswith("Missing admin token")
        reply = wrong.request(method, path)
        assert_error(reply, 401, "Invalid admin token")
        assert reply.headers["www-authenticate"] == "Bearer"
        assert_error(basic.request(method, path), 401)
    assert TOKEN not in admin_server.log()  # never logged
    # Open without a token: liveness, the API description, and the web page.
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    assert anonymous.get("/openapi.json").status_code == 200
    assert anonymous.get("/docs").status_code == 200


def test_status_200_and_logs_404_before_any_run(admin_server: AdminServer) -> None:
    client = admin_server.client()
    status = client.get("/api/dataset-worker/status")
    assert status.status_code == 200
    assert status.json()["running"] is False and status.json()["lastRun"] is None
    assert status.json()["state"] == "stopped"
    assert_error(client.get("/api/dataset-worker/logs"), 404, "No worker has run")
    assert_error(client.get("/api/dataset-worker/logs/stream"), 404, "No worker has run")
    assert_error(client.post("/api/dataset-worker/stop"), 404, "Worker not running")
    assert_error(client.get("/api/nothing/here"), 404, "/api/nothing/here")
    assert_error(client.delete("/api/dataset-worker/status"), 405, "DELETE")
    assert client.get("/api/dataset-worker/audit").json()["entries"][0]["result"] == {
        "httpStatus": 404,
        "error": "Worker not running",
    }


BAD_STARTS = [
    (b'{"concurrency": ', None, "not valid JSON"),
    (b"[1, 2]", None, "must be a JSON object"),
    (b'"text"', None, "must be a JSON object"),
    (b'{"concurrency": "4"}', "concurrency", "concurrency must be an integer"),
    (b'{"concurrency": 1.5}', "concurrency", "concurrency must be an integer"),
    (b'{"concurrency": true}', "concurrency", "concurrency must be an integer"),
    (b'{"concurrency": 0}', "concurrency", "concurrency must be between 1 and 64, got 0"),
    (b'{"concurrency": 65}', "concurrency", "concurrency must be between 1 and 64, got 65"),
    (b'{"enableScan": "false"}', "enableScan", "enableScan must be true or false"),
    (b'{"enableScan": 0}', "enableScan", "enableScan must be true or false"),
    (b'{"workers": 2}', "workers", "workers is not a known field"),
    (b'{"enable_scan": false}', "enable_scan", "enable_scan is not a known field"),
    (b'{"minInterval": "5"}', "minInterval", "minInterval is not a Go duration"),
    (b'{"maxInterval": "1d"}', "maxInterval", "maxInterval is not a Go duration"),
    (b'{"minInterval": 5}', "minInterval", "minInterval must be a string"),
    (b'{"minInterval": "0s"}', "minInterval", "minInterval must be a positive duration"),
    (b'{"maxInterval": "-2s"}', "maxInterval", "maxInterval must be a positive duration"),
    (
        b'{"minInterval": "10s", "maxInterval": "5s"}',
        None,
        "minInterval (10s) must not be greater than maxInterval (5s)",
    ),
    (
        b'{"enableScan": false, "enablePack": false, "enableDag": false}',
        None,
        "at least one of enableScan, enablePack, enableDag must be true",
    ),
]


def test_start_400_names_the_field_and_the_rule(admin_server: AdminServer) -> None:
    client = admin_server.client()
    for body, field, phrase in BAD_STARTS:
        reply = client.post(
            "/api/dataset-worker/start", content=body, headers={"Content-Type": "application/json"}
        )
        problem = assert_error(reply, 400, phrase)
        assert problem["detail"][0]["field"] == field, body
    assert not client.get("/api/dataset-worker/status").json()["running"]
    assert client.get("/api/dataset-worker/audit").json()["entries"] == []  # nothing started


def test_start_200_409_stop_200_404_and_query_400s(admin_server: AdminServer) -> None:
    client = admin_server.client()
    empty = client.post("/api/dataset-worker/start")  # no body at all: every CLI default
    assert empty.status_code == 200, empty.text
    pid = empty.json()["pid"]
    assert empty.json()["status"] == "started"
    config = client.get("/api/dataset-worker/status").json()["config"]
    assert config == {
        "concurrency": 1,
        "enableScan": True,
        "enablePack": True,
        "enableDag": True,
        "exitOnComplete": False,
        "exitOnError": False,
        "minInterval": "5s",
        "maxInterval": "160s",
        "maxAttempts": 5,
    }
    conflict = assert_error(client.post("/api/dataset-worker/start", json={}), 409)
    assert conflict["error"] == "Worker already running" and conflict["pid"] == pid
    for params, phrase in (
        ({"timeout": "soon"}, "query parameter timeout must be a number"),
        ({"timeout": -1}, "query parameter timeout must be at least 0"),
        ({"timeout": 99999}, "query parameter timeout must be at most 3600"),
    ):
        assert_error(client.post("/api/dataset-worker/stop", params=params), 400, phrase)
    for params, phrase in (
        ({"tail": 5, "offset": 0}, "tail and offset cannot be combined"),
        ({"stream": "stdin"}, "query parameter stream must be 'stdout' or 'stderr'"),
        ({"tail": -1}, "query parameter tail must be at least 0"),
        ({"offset": "x"}, "query parameter offset must be an integer"),
    ):
        assert_error(client.get("/api/dataset-worker/logs", params=params), 400, phrase)
    for params, phrase in (
        ({"limit": 0}, "query parameter limit must be at least 1"),
        ({"limit": 1001}, "query parameter limit must be at most 1000"),
        ({"status": "running"}, "query parameter status must be"),
        ({"type": "compress"}, "query parameter type must be"),
        ({"cursor": "abc"}, 'cursor "abc" is not valid'),
    ):
        assert_error(client.get("/api/dataset-worker/jobs", params=params), 400, phrase)
    assert_error(
        client.get("/api/dataset-worker/jobs", params={"preparation": "nope"}), 404, "nope"
    )
    assert_error(client.get("/api/dataset-worker/audit", params={"limit": 0}), 400, "limit")

    wait_for_log(client, "thread.start")  # its signal handlers are installed
    stopped = client.post("/api/dataset-worker/stop", params={"timeout": 30})
    assert stopped.status_code == 200
    assert stopped.json()["pid"] == pid and stopped.json()["exitCode"] == 130, stopped.json()
    assert_error(client.post("/api/dataset-worker/stop"), 404, "Worker not running")
    actions = [
        (e["action"], e["result"]["httpStatus"])
        for e in client.get("/api/dataset-worker/audit").json()["entries"]
    ]
    assert actions == [("stop", 404), ("stop", 200), ("start", 409), ("start", 200)]


def test_start_500_when_the_worker_cannot_be_spawned(admin_server: AdminServer) -> None:
    client = admin_server.client()
    logs_dir = admin_server.state_dir / "worker" / "logs"
    shutil.rmtree(logs_dir)
    logs_dir.write_text("a file where the log folder should be")
    body = assert_error(client.post("/api/dataset-worker/start", json={}), 500, "Failed to start")
    assert "log pump exited" in body["error"]
    status = client.get("/api/dataset-worker/status").json()
    assert status["state"] == "fatal" and status["running"] is False
    assert "Failed to start" in status["error"]
    logs_dir.unlink()
    logs_dir.mkdir()
    assert start_worker(client) > 0  # recovers from FATAL


def test_preparation_codes(admin_server: AdminServer, tmp_path: Path) -> None:
    client = admin_server.client()
    source = make_source(tmp_path / "src", {"a": 10})
    body = {"name": "p1", "source": str(source), "output": str(tmp_path / "out"), "noAuto": True}
    created = client.post("/api/preparations", json=body)
    assert created.status_code == 201, created.text
    assert_error(client.post("/api/preparations", json=body), 409, "p1")
    assert_error(client.post("/api/preparations", json={**body, "name": "123"}), 400, "name")
    assert_error(
        client.post("/api/preparations", json={**body, "name": "p2", "source": "/nonexistent"}),
        400,
        "/nonexistent",
    )
    assert_error(client.post("/api/preparations", json={"name": "p3"}), 400, "source is required")
    assert_error(client.post("/api/preparations", json={**body, "colour": 1}), 400, "colour")
    assert_error(client.get("/api/preparations/nope"), 404, "nope")
    assert_error(client.get("/api/preparations/nope/pieces"), 404, "nope")
    assert_error(client.post("/api/preparations/nope/start-scan"), 404, "nope")
    assert client.post("/api/preparations/p1/start-scan").json()["state"] == "ready"
    assert_error(client.post("/api/preparations/p1/start-scan"), 409, "already queued")
    assert client.post("/api/preparations/p1/pause-scan").json()["state"] == "paused"
    assert_error(client.post("/api/preparations/p1/start-pack", params={"jobId": 0}), 400, "jobId")
    assert client.get("/api/preparations/p1").json()["jobs"]["scan"]["paused"] == 1
    assert client.get("/api/preparations/p1/pieces").json() == []
