"""A worker that ends by itself is seen by status with its exit code or signal (docs/architecture.md#differences-from-singularity #3)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx

from tests.integration.api_support import (
    AdminServer,
    add_preparation,
    make_source,
    start_worker,
    wait_for_log,
)
from tests.support.wait import wait_until


def last_run(client: httpx.Client) -> dict[str, Any] | None:
    """The last run once its exit code or signal is known (the server may see the process gone
    a moment before the log pump has recorded how it ended)."""
    status = client.get("/api/dataset-worker/status").json()
    if status["running"]:
        return None
    run: dict[str, Any] | None = status["lastRun"]
    if run is None or (run["exitCode"] is None and run["signal"] is None):
        return None
    return run


def test_exit_on_complete_is_seen_with_code_0(admin_server: AdminServer) -> None:
    client = admin_server.client()
    pid = start_worker(client, exitOnComplete=True, concurrency=2)
    run = wait_until(lambda: last_run(client), 60, "the worker to exit")
    assert (run["pid"], run["exitCode"], run["signal"]) == (pid, 0, None)
    assert run["endTime"] >= run["startTime"]
    assert run["config"]["exitOnComplete"] is True
    status = client.get("/api/dataset-worker/status").json()
    assert status["state"] == "exited" and status["pid"] is None and status["uptime"] is None
    logs = client.get("/api/dataset-worker/logs").json()  # the last run's logs stay readable
    assert logs["pid"] == pid and logs["running"] is False and "worker.start" in logs["stdout"]
    again = client.post("/api/dataset-worker/start", json={"exitOnComplete": True})
    assert again.status_code == 200  # an exited worker never blocks a new start


def test_exit_on_error_is_seen_with_code_1(admin_server: AdminServer, tmp_path: Path) -> None:
    client = admin_server.client()
    source = make_source(tmp_path / "gone", {"a.txt": 100})
    add_preparation(admin_server.database_url, "broken", source, tmp_path / "out", noAuto=True)
    assert client.post("/api/preparations/broken/start-scan").status_code == 200
    shutil.rmtree(source)  # the scan will fail
    pid = start_worker(client, exitOnError=True)
    run = wait_until(lambda: last_run(client), 60, "the worker to exit")
    assert (run["pid"], run["exitCode"], run["signal"]) == (pid, 1, None)
    jobs = client.get("/api/dataset-worker/jobs").json()["jobs"]
    assert [(j["type"], j["status"]) for j in jobs] == [("scan", "error")]
    assert jobs[0]["error"]


def test_a_crash_is_seen_with_its_signal(admin_server: AdminServer) -> None:
    client = admin_server.client()
    pid = start_worker(client)
    wait_for_log(client, "thread.start")  # signal handlers installed
    os.kill(pid, signal.SIGSEGV)
    run = wait_until(lambda: last_run(client), 60, "the crash to be noticed")
    assert (run["pid"], run["exitCode"], run["signal"]) == (pid, None, "SIGSEGV")
    stop = client.post("/api/dataset-worker/stop")
    assert stop.status_code == 404
    metrics = client.get("/metrics").text
    assert f"dataset_worker_worker_last_exit_code {128 + signal.SIGSEGV}.0" in metrics
