"""One worker per state dir, whatever the clients and servers do: concurrent starts, two servers
on one state dir, and server restarts (graceful or a crash) that adopt the running worker."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.integration.api_support import (
    FAST,
    TOKEN,
    AdminServer,
    start_server,
    start_worker,
    wait_for_log,
    worker_processes,
)


def test_100_concurrent_starts_over_three_server_processes_make_one_worker(
    admin_server: AdminServer,
) -> None:
    # The other server runs two processes (serve --workers 2): three servers in all.
    other = start_server(
        admin_server.state_dir, admin_server.database_url, extra_args=("--workers", "2")
    )
    try:
        barrier = threading.Barrier(100)

        def start(index: int) -> tuple[int, dict[str, object]]:
            server = admin_server if index % 2 else other
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
            ) as client:
                barrier.wait()
                reply = client.post("/api/dataset-worker/start", json=FAST)
                return reply.status_code, reply.json()

        with ThreadPoolExecutor(max_workers=100) as pool:
            results = list(pool.map(start, range(100)))
        codes = Counter(code for code, _ in results)
        assert codes == {200: 1, 409: 99}, codes
        pid = next(body["pid"] for code, body in results if code == 200)
        assert all(body["pid"] in (pid, None) for code, body in results if code == 409)
        assert worker_processes(admin_server.state_dir) == [pid]

        # Both servers see the same worker; either can stop it.
        a, b = admin_server.client(), other.client()
        assert a.get("/api/dataset-worker/status").json()["pid"] == pid
        assert b.get("/api/dataset-worker/status").json()["pid"] == pid
        wait_for_log(b, "thread.start")  # signal handlers installed
        stopped = b.post("/api/dataset-worker/stop")
        assert stopped.status_code == 200 and stopped.json()["exitCode"] == 130
        status = a.get("/api/dataset-worker/status").json()
        assert status["running"] is False and status["lastRun"]["pid"] == pid
        assert a.post("/api/dataset-worker/stop").status_code == 404
        assert worker_processes(admin_server.state_dir) == []
        audit = a.get("/api/dataset-worker/audit", params={"limit": 1000}).json()["entries"]
        starts = Counter(e["result"]["httpStatus"] for e in audit if e["action"] == "start")
        assert starts == {200: 1, 409: 99}
    finally:
        other.shutdown()


def test_a_restarted_server_adopts_the_running_worker(admin_server: AdminServer) -> None:
    client = admin_server.client()
    pid = start_worker(client, concurrency=3)
    wait_for_log(client, "thread.start")  # signal handlers installed
    admin_server.shutdown(signal.SIGKILL)  # a crash: no chance to clean up
    assert worker_processes(admin_server.state_dir) == [pid]  # the worker outlives the server

    restarted = start_server(admin_server.state_dir, admin_server.database_url)
    try:
        client = restarted.client()
        status = client.get("/api/dataset-worker/status").json()
        assert status["running"] is True and status["pid"] == pid
        assert status["config"]["concurrency"] == 3
        assert client.post("/api/dataset-worker/start", json={}).status_code == 409
        before = client.get("/api/dataset-worker/logs").json()["nextOffset"]["stdout"]
        assert before > 0  # output captured while no server was there is still there
    finally:
        restarted.shutdown(signal.SIGTERM)  # a graceful restart leaves the worker running too
    assert worker_processes(admin_server.state_dir) == [pid]

    again = start_server(admin_server.state_dir, admin_server.database_url)
    try:
        client = again.client()
        assert client.get("/api/dataset-worker/status").json()["pid"] == pid
        stopped = client.post("/api/dataset-worker/stop")
        assert stopped.status_code == 200
        assert (stopped.json()["pid"], stopped.json()["exitCode"]) == (pid, 130)
        assert worker_processes(admin_server.state_dir) == []
        assert client.get("/api/dataset-worker/status").json()["lastRun"]["exitCode"] == 130
    finally:
        again.shutdown()


def test_stop_worker_on_exit_option(admin_server: AdminServer) -> None:
    server = start_server(
        admin_server.state_dir.parent / "other-state",
        admin_server.database_url,
        extra_args=("--stop-worker-on-exit",),
    )
    try:
        client = server.client()
        pid = start_worker(client)
        wait_for_log(client, "thread.start")  # signal handlers installed
    finally:
        server.shutdown(signal.SIGTERM)
    assert server.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert worker_processes(server.state_dir) == []
    assert pid > 0
