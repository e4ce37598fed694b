"""Start and stop requests that overlap, through real servers and the real worker process: a stop
during a start stops the new worker (never a 404 with a worker left running), and the 409s of
concurrent starts name the run that is current, not the previous one."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
from tests.support.wait import wait_until

ATTEMPTS = 6  # each overlaps a stop with a start; a start lasts a few hundred milliseconds


def _client(server: AdminServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
    )


def _stop_during_start(starter: AdminServer, stopper: AdminServer) -> tuple[Any, Any, bool]:
    """POST start to `starter`; as soon as its status says "starting", POST stop to `stopper`.

    Returns both replies and whether the stop was sent while the start was still under way.
    """
    with (
        _client(starter) as start_client,
        _client(stopper) as stop_client,
        _client(starter) as watcher,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        started = pool.submit(start_client.post, "/api/dataset-worker/start", json=FAST)
        during = False
        while not started.done():
            if watcher.get("/api/dataset-worker/status").json()["state"] == "starting":
                during = not started.done()
                break
        stopped = stop_client.post("/api/dataset-worker/stop", params={"timeout": 10})
        return started.result(), stopped, during


def test_a_stop_during_a_start_stops_the_new_worker(admin_server: AdminServer) -> None:
    # The stop goes to the starting server itself, or to a second server on the same state dir.
    other = start_server(admin_server.state_dir, admin_server.database_url)
    try:
        overlapped = Counter[str]()
        for attempt in range(ATTEMPTS):
            stopper = admin_server if attempt % 2 == 0 else other
            where = "same server" if stopper is admin_server else "other server"
            started, stopped, during = _stop_during_start(admin_server, stopper)
            assert started.status_code == 200, started.text
            assert stopped.status_code == 200, f"{where}: {stopped.status_code} {stopped.text}"
            assert stopped.json()["pid"] == started.json()["pid"]
            wait_until(
                lambda: not worker_processes(admin_server.state_dir), 30, "no worker left running"
            )
            overlapped[where] += during
        # The race was really run: the stop arrived while the start was under way.
        assert overlapped["same server"] >= 1 and overlapped["other server"] >= 1, overlapped
        with _client(admin_server) as client:
            audit = client.get("/api/dataset-worker/audit", params={"limit": 100}).json()
        stops = Counter(
            e["result"]["httpStatus"] for e in audit["entries"] if e["action"] == "stop"
        )
        assert stops == {200: ATTEMPTS}
    finally:
        other.shutdown()


def test_concurrent_starts_after_a_finished_run_name_the_new_run(
    admin_server: AdminServer,
) -> None:
    client = admin_server.client()
    old_pid = start_worker(client)
    wait_for_log(client, "thread.start")  # signal handlers installed
    assert client.post("/api/dataset-worker/stop").status_code == 200

    other = start_server(admin_server.state_dir, admin_server.database_url)
    try:
        barrier = threading.Barrier(12)

        def start(index: int) -> tuple[int, dict[str, Any]]:
            with _client(admin_server if index % 2 else other) as each:
                barrier.wait()
                reply = each.post("/api/dataset-worker/start", json=FAST)
                return reply.status_code, reply.json()

        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(start, range(12)))
        codes = Counter(code for code, _ in results)
        assert codes == {200: 1, 409: 11}, results
        new = next(body for code, body in results if code == 200)
        assert new["pid"] != old_pid and new["runId"] == 2
        for code, body in results:
            if code == 409:
                assert body["error"] == "Worker already running", body
                assert body["pid"] == new["pid"], (body, old_pid)
                assert body["detail"] == {"pid": new["pid"], "runId": 2}
        assert worker_processes(admin_server.state_dir) == [new["pid"]]
    finally:
        other.shutdown()
