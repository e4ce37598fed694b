"""An inline preparation end to end through the real processes: created over HTTP without an
output, prepared by the real worker (scan, pack, daggen chained), served by the real content
provider with the piece CIDs the pieces list records; no CAR file is written anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import commp_of, finalize
from tests.integration.api_support import AdminServer, make_source, start_worker
from tests.integration.provider_support import running_provider
from tests.support.wait import wait_until


def test_an_inline_preparation_is_prepared_and_served(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    client = admin_server.client()
    source = make_source(tmp_path / "src", {"a.txt": 5000, "d/b.bin": 300_000, "d/e.bin": 0})
    reply = client.post("/api/preparations", json={"name": "inl", "source": str(source)})
    assert reply.status_code == 201, reply.text
    assert reply.json()["outputStorages"] == []

    refused = client.post(
        "/api/preparations",
        json={"name": "inl2", "source": str(source), "deleteAfterExport": True},
    )
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "deleteAfterExport"

    start_worker(client)

    def pieces() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = client.get("/api/preparations/inl/pieces").json()
        kinds = {row["pieceType"] for row in rows}
        return rows if kinds == {"data", "dag"} else None

    rows = wait_until(pieces, 120, "a data and a DAG piece")
    assert all(row["storageId"] is None and row["storagePath"] == "" for row in rows)
    assert not any(p.suffix in (".car", ".part") for p in tmp_path.rglob("*"))

    for provider in running_provider(admin_server.database_url, tmp_path):
        for row in rows:
            body = client.get(f"{provider.url}/piece/{row['pieceCid']}").content
            assert len(body) == row["fileSize"]
            commitment, _ = finalize(commp_of(body), row["pieceSize"])
            assert cid_to_str(piece_cid(commitment)) == row["pieceCid"]
