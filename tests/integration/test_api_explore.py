"""GET /api/preparations/{p}/explore[/{path}] through the real server, after a real scan, pack and
daggen of a small tree (job bodies run in process on the server's database)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from dataset_worker.content.chunker import stream_file_cid
from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import File, JobType
from dataset_worker.worker.jobs.scan.batching import range_split_size
from tests.integration.api_support import AdminServer
from tests.support.jobs import reference_root, run_ready_jobs
from tests.support.preps import PackedPrep, packed_preparation

KIB = 1024
MANY = 25  # files in "many/": several pages at limit 4
FILES: dict[str, int | bytes] = {
    "a.txt": 10 * KIB,
    "big.bin": 2500 * KIB,  # more than two 1000 KiB pieces: its ranges land in three or more
    "dir/b.bin": 300 * KIB,
    "dir/sub/c.bin": 5 * KIB,
    "spaced dir é/inner.txt": b"inner",
    "many/s1/x.txt": b"x",
    "many/s2/y.txt": b"y",
    **{f"many/f-{i:03d}.txt": bytes([i]) * (i + 1) for i in range(MANY)},
}


@pytest.fixture
def db(admin_server: AdminServer) -> Iterator[Database]:
    database = Database(admin_server.database_url)
    yield database
    database.dispose()


@pytest.fixture
def prep(db: Database, tmp_path: Path) -> PackedPrep:
    return packed_preparation(db, tmp_path, "photos", FILES)


def entries(reply: httpx.Response) -> dict[str, dict[str, Any]]:
    assert reply.status_code == 200, reply.text
    return {entry["name"]: entry for entry in reply.json()["entries"]}


def test_root_and_subfolders_show_what_was_packed(
    admin_server: AdminServer, prep: PackedPrep
) -> None:
    client = admin_server.client()
    pieces = client.get("/api/preparations/photos/pieces").json()
    data_pieces = {p["pieceCid"] for p in pieces if p["pieceType"] == "data"}
    (dag_piece,) = [p["pieceCid"] for p in pieces if p["pieceType"] == "dag"]

    root = client.get("/api/preparations/photos/explore")
    assert root.status_code == 200, root.text
    body = root.json()
    assert body["preparation"] == "photos" and body["path"] == "" and body["nextCursor"] is None
    # Folders first, then files, each by name.
    assert [e["name"] for e in body["entries"]] == [
        "dir", "many", "spaced dir é", "a.txt", "big.bin"
    ]  # fmt: skip
    assert client.get("/api/preparations/photos/explore/").json() == body
    assert client.get(f"/api/preparations/{prep.id}/explore").json() == body

    # The root folder's CID is the one computed straight from the files.
    expected_root = reference_root(prep.source, range_split_size(1000 * KIB))
    assert expected_root is not None and body["cid"] == cid_to_str(expected_root[0])

    top = {e["name"]: e for e in body["entries"]}
    small = (prep.source / "a.txt").read_bytes()
    assert top["a.txt"]["isDir"] is False and top["a.txt"]["size"] == len(small)
    assert top["a.txt"]["cid"] == cid_to_str(stream_file_cid(io.BytesIO(small), len(small)))
    assert len(top["a.txt"]["pieceCids"]) == 1 and set(top["a.txt"]["pieceCids"]) <= data_pieces
    assert len(top["big.bin"]["pieceCids"]) >= 3 and set(top["big.bin"]["pieceCids"]) <= data_pieces
    for folder in ("dir", "many", "spaced dir é"):
        entry = top[folder]
        assert entry["isDir"] is True and entry["size"] is None and entry["sha256"] is None
        assert entry["cid"] and entry["pieceCids"] == [dag_piece]

    sub = entries(client.get("/api/preparations/photos/explore/dir"))
    assert list(sub) == ["sub", "b.bin"] and sub["b.bin"]["size"] == 300 * KIB
    assert sub["sub"]["cid"] == client.get("/api/preparations/photos/explore/dir/sub").json()["cid"]
    deep = client.get("/api/preparations/photos/explore/dir/sub/").json()
    assert deep["path"] == "dir/sub" and [e["name"] for e in deep["entries"]] == ["c.bin"]
    spaced = client.get("/api/preparations/photos/explore/spaced%20dir%20%C3%A9")
    assert list(entries(spaced)) == ["inner.txt"] and spaced.json()["path"] == "spaced dir é"

    # Every data piece holds some file listed somewhere.
    listed = set(top["a.txt"]["pieceCids"]) | set(top["big.bin"]["pieceCids"])
    for folder in ("dir", "dir/sub", "many", "many/s1", "many/s2", "spaced dir é"):
        for entry in entries(client.get(f"/api/preparations/photos/explore/{folder}")).values():
            listed |= set(entry["pieceCids"]) if not entry["isDir"] else set()
    assert listed == data_pieces


def test_empty_folders_are_marked_as_not_in_the_dag(
    admin_server: AdminServer, db: Database, tmp_path: Path
) -> None:
    packed_preparation(
        db, tmp_path, "gaps", {"a.txt": b"a", "full/b.txt": b"b"},
        empty_folders=("hollow/inner", "void"),
    )  # fmt: skip
    client = admin_server.client()
    root = entries(client.get("/api/preparations/gaps/explore"))
    assert list(root) == ["full", "hollow", "void", "a.txt"]
    # "hollow" holds only an empty folder: no file at any depth, so no CID either.
    assert [(n, e["cid"] is None, e["empty"]) for n, e in root.items()] == [
        ("full", False, False), ("hollow", True, True), ("void", True, True), ("a.txt", False, False)
    ]  # fmt: skip
    inner = entries(client.get("/api/preparations/gaps/explore/hollow"))
    assert inner["inner"]["empty"] is True and inner["inner"]["cid"] is None


def test_a_big_folder_pages_by_cursor(admin_server: AdminServer, prep: PackedPrep) -> None:
    client = admin_server.client()
    expected = ["s1", "s2", *(f"f-{i:03d}.txt" for i in range(MANY))]
    whole = client.get("/api/preparations/photos/explore/many", params={"limit": 1000}).json()
    assert [e["name"] for e in whole["entries"]] == expected and whole["nextCursor"] is None

    for limit in (1, 4):  # pages that end on a folder, and pages that cross to the files
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            page = client.get("/api/preparations/photos/explore/many", params=params).json()
            assert len(page["entries"]) <= limit
            seen += [e["name"] for e in page["entries"]]
            pages += 1
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == expected and pages == -(-len(expected) // limit)

    # A cursor only continues the folder it came from.
    first = client.get("/api/preparations/photos/explore/many", params={"limit": 1}).json()
    elsewhere = client.get(
        "/api/preparations/photos/explore/dir", params={"cursor": first["nextCursor"]}
    )
    assert elsewhere.status_code == 400 and "does not belong to this folder" in elsewhere.text


# One server answers every case (a server per case cost 1.5 s each): the requests only read.
BAD_REQUESTS: list[tuple[str, int, list[str]]] = [
    ("/api/preparations/photos/explore/nope", 404, ['folder "nope" not found']),
    ("/api/preparations/photos/explore/dir/nope/deeper", 404, ['folder "dir/nope/deeper"']),
    ("/api/preparations/photos/explore/a.txt", 404, ['"a.txt"', "is a file"]),
    ("/api/preparations/nobody/explore", 404, ['preparation "nobody" not found']),
    ("/api/preparations/photos/explore/%2E%2E", 400, ["path", ".."]),
    ("/api/preparations/photos/explore/dir/%2E%2E/dir", 400, ["path", ".."]),
    ("/api/preparations/photos/explore/dir%00x", 400, ["path", "NUL"]),
    ("/api/preparations/photos/explore/dir//sub", 400, ["path", "empty segment"]),
    ("/api/preparations/photos/explore?limit=0", 400, ["limit", "at least 1"]),
    ("/api/preparations/photos/explore?limit=1001", 400, ["limit", "at most 1000"]),
    ("/api/preparations/photos/explore?cursor=bogus", 400, ["cursor", "nextCursor"]),
]


def test_unknown_folders_and_bad_requests(admin_server: AdminServer, prep: PackedPrep) -> None:
    client = admin_server.client()
    for url, status, words in BAD_REQUESTS:
        reply = client.get(url)
        assert reply.status_code == status, (url, reply.text)
        message = reply.json()["error"]
        assert all(word in message for word in words), (url, message)


def test_newest_row_of_a_changed_file_and_its_sha256(
    admin_server: AdminServer, db: Database, prep: PackedPrep
) -> None:
    client = admin_server.client()
    before = entries(client.get("/api/preparations/photos/explore/dir"))["b.bin"]
    assert before["cid"] is not None and before["pieceCids"]

    # A changed file: the rescan records a new row for the same path, not packed yet.
    (prep.source / "dir" / "b.bin").write_bytes(b"changed")
    assert client.post("/api/preparations/photos/start-scan").status_code == 200
    assert run_ready_jobs(db, JobType.SCAN, attachment_id=prep.attachment_id)
    with db.read() as session:
        rows = session.query(File).filter(File.path == "dir/b.bin").count()
    assert rows == 2
    after = entries(client.get("/api/preparations/photos/explore/dir"))
    assert list(after) == ["sub", "b.bin"]  # one entry per path
    assert after["b.bin"]["size"] == len(b"changed") and after["b.bin"]["cid"] is None
    assert after["b.bin"]["pieceCids"] == [] and after["b.bin"]["sha256"] is None

    # sha256 shows as hex when recorded, null when not.
    digest = hashlib.sha256((prep.source / "a.txt").read_bytes()).digest()
    with db.write() as session:
        session.execute(update(File).where(File.path == "a.txt").values(sha256=digest))
        session.execute(update(File).where(File.path == "big.bin").values(sha256=None))
    top = entries(client.get("/api/preparations/photos/explore"))
    assert top["a.txt"]["sha256"] == digest.hex()
    assert top["big.bin"]["sha256"] is None
