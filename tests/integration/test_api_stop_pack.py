"""Stopping the worker in the middle of a pack: graceful (SIGTERM) leaves the job `ready` and no
partial CAR; forced (SIGKILL after the grace period) has the server release the job itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.integration.api_support import (
    AdminServer,
    add_preparation,
    start_worker,
)
from tests.support.wait import wait_until

GIB = 1 << 30


def sparse_source(root: Path) -> Path:
    """A 3 GiB file that takes no disk space: its pack jobs take seconds to hash."""
    root.mkdir(parents=True)
    with (root / "big.bin").open("wb") as handle:
        handle.truncate(3 * GIB)
    return root


def packing_job(client: httpx.Client) -> dict[str, Any] | None:
    page = client.get("/api/dataset-worker/jobs", params={"type": "pack", "status": "processing"})
    jobs: list[dict[str, Any]] = page.json()["jobs"]
    return jobs[0] if jobs else None


def job_status(client: httpx.Client, job_id: int) -> str:
    jobs = client.get("/api/dataset-worker/jobs", params={"type": "pack"}).json()["jobs"]
    return str(next(j["status"] for j in jobs if j["id"] == job_id))


def start_packing(admin_server: AdminServer, tmp_path: Path) -> tuple[httpx.Client, Path, int]:
    client = admin_server.client()
    output = tmp_path / "cars"
    add_preparation(
        admin_server.database_url,
        "big",
        sparse_source(tmp_path / "src"),
        output,
        maxSize="1000MiB",
        noAuto=True,
    )
    assert client.post("/api/preparations/big/start-scan").status_code == 200
    start_worker(client)
    job = wait_until(lambda: packing_job(client), 120, "a pack job to be processing")
    # Let it write part of its CAR first.
    wait_until(lambda: any(p.stat().st_size > 0 for p in output.iterdir()), 60, "CAR bytes")
    return client, output, int(job["id"])


def test_graceful_stop_during_a_pack(admin_server: AdminServer, tmp_path: Path) -> None:
    client, output, job_id = start_packing(admin_server, tmp_path)
    stopped = client.post("/api/dataset-worker/stop", params={"timeout": 60})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["forced"] is False and stopped.json()["exitCode"] == 130
    assert job_status(client, job_id) == "ready"
    assert list(output.iterdir()) == []  # no CAR, no temporary file
    assert client.get("/api/preparations/big/pieces").json() == []


def test_forced_stop_during_a_pack_releases_the_job(
    admin_server: AdminServer,
    tmp_path: Path,
) -> None:
    client, _output, job_id = start_packing(admin_server, tmp_path)
    stopped = client.post("/api/dataset-worker/stop", params={"timeout": 0})
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["forced"] is True and body["signal"] == "SIGKILL" and body["exitCode"] is None
    assert body["jobsReleased"] == 1
    assert job_status(client, job_id) == "ready"  # claimable again at once, not after a reaper
    assert client.get("/api/preparations/big/pieces").json() == []
