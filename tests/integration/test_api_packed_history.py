"""GET /api/packed-history: the running total of packed bytes at each data piece, bounded,
through a real server and the real worker."""

from __future__ import annotations

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
# 120 KiB CARs in 128 KiB pieces: one piece per 100 KiB file.
SMALL_PIECES = {"maxSize": "120KiB", "minPieceSize": "128KiB"}


def history(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    reply = client.get("/api/packed-history", params=params)
    assert reply.status_code == 200, reply.text
    points: list[dict[str, Any]] = reply.json()["points"]
    return points


def packs_done(client: httpx.Client, names: list[str]) -> bool:
    for name in names:
        pack = client.get(f"/api/preparations/{name}").json()["jobs"]["pack"]
        if not pack["complete"] or any(n for state, n in pack.items() if state != "complete"):
            return False
    return True


def test_packed_history_follows_the_pieces(admin_server: AdminServer, tmp_path: Path) -> None:
    client = admin_server.client()
    assert history(client) == []  # nothing packed yet

    files = {f"f{i}.bin": 100 * KIB for i in range(5)}
    create_preparation(
        client, "many", make_source(tmp_path / "many", files), tmp_path / "o1", **SMALL_PIECES
    )
    create_preparation(
        client,
        "one",
        make_source(tmp_path / "one", {"x": 50 * KIB}),
        tmp_path / "o2",
        **SMALL_PIECES,
    )
    for name in ("many", "one"):
        # 409: creating the preparation already queued its scan.
        assert client.post(f"/api/preparations/{name}/start-scan").status_code in (200, 409)
    start_worker(client, concurrency=2)
    wait_until(lambda: packs_done(client, ["many", "one"]), 120, "every pack job to complete")

    points = history(client)
    data_pieces = [
        piece
        for name in ("many", "one")
        for piece in client.get(f"/api/preparations/{name}/pieces").json()
        if piece["pieceType"] == "data"
    ]
    assert len(points) == len(data_pieces) == 6
    times = [datetime.fromisoformat(p["time"].replace("Z", "+00:00")) for p in points]
    assert times == sorted(times)
    assert sorted(times) == sorted(
        datetime.fromisoformat(p["createdAt"].replace("Z", "+00:00")) for p in data_pieces
    )
    totals = [p["bytes"] for p in points]
    assert totals == sorted(set(totals))  # grows at every piece
    packed = sum(
        client.get(f"/api/preparations/{n}").json()["bytesPacked"] for n in ("many", "one")
    )
    assert totals[-1] == packed == 5 * 100 * KIB + 50 * KIB  # the status's total, as it grew

    # Bounded: fewer points keep the current total last.
    two = history(client, points=2)
    assert 1 <= len(two) <= 2 and two[-1] == points[-1]
    for bad in ("1", "501", "many"):
        reply = client.get("/api/packed-history", params={"points": bad})
        assert reply.status_code == 400, reply.text
        assert [e["field"] for e in reply.json()["errors"]] == ["points"]
        assert "points" in reply.json()["error"]

    operation = client.get("/openapi.json").json()["paths"]["/api/packed-history"]["get"]
    assert set(operation["responses"]) == {"200", "400", "401"}
    assert client.get("/api/packed-history", headers={"Authorization": ""}).status_code == 401
