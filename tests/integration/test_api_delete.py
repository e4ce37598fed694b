"""DELETE /api/preparations/{p} through the real server, on preparations scanned, packed and given
their DAG by the real job bodies (run in process on the server's database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType
from tests.integration.api_support import AdminServer
from tests.support.preps import (
    TABLES,
    PackedPrep,
    claim,
    packed_preparation,
    prep_counts,
    table_counts,
)

KIB = 1024
FILES: dict[str, int | bytes] = {
    "a.txt": 10 * KIB,
    "big.bin": 1500 * KIB,
    "dir/b.bin": 300 * KIB,
    "dir/sub/c.bin": 5 * KIB,
}


@pytest.fixture
def db(admin_server: AdminServer) -> Iterator[Database]:
    database = Database(admin_server.database_url)
    yield database
    database.dispose()


def _jobs(db: Database, prep: PackedPrep, job_type: JobType) -> list[int]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Job.id)
                .where(Job.attachment_id == prep.attachment_id, Job.type == job_type)
                .order_by(Job.id)
            )
        )


def _set_state(db: Database, job_id: int, state: JobState) -> None:
    with db.write() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state=state, worker_id=None))


def test_delete_is_refused_while_a_job_processes_then_removes_every_row(
    admin_server: AdminServer, db: Database, tmp_path: Path
) -> None:
    client = admin_server.client()
    gone = packed_preparation(db, tmp_path, "gone", FILES)
    kept = packed_preparation(db, tmp_path, "kept", FILES)
    cars = sorted(gone.output.glob("*.car"))
    assert len(cars) >= 3
    unrelated = gone.output / "notes.txt"
    unrelated.write_text("not a CAR of this preparation")
    before = prep_counts(db, gone)
    assert all(before[table] for table in TABLES)
    kept_before = prep_counts(db, kept)

    # A claimed pack job: refused, naming it; a ready job is not left paused by the refusal.
    busy, *_ = _jobs(db, gone, JobType.PACK)
    (daggen,) = _jobs(db, gone, JobType.DAGGEN)
    claim(db, busy)
    _set_state(db, daggen, JobState.READY)
    refused = client.delete("/api/preparations/gone")
    assert refused.status_code == 409, refused.text
    assert f"pack job {busy}" in refused.json()["error"]
    assert prep_counts(db, gone) == before
    with db.read() as session:
        assert session.get(Job, daggen).state is JobState.READY  # type: ignore[union-attr]

    _set_state(db, busy, JobState.COMPLETE)
    reply = client.delete("/api/preparations/gone")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["name"] == "gone" and body["id"] == gone.id and body["keptStorages"] == []
    removed = body["removed"]
    assert removed == {
        "preparations": 1,
        "sourceAttachments": 1,
        "outputAttachments": 1,
        "storages": 2,
        "jobs": before["jobs"],
        "directories": before["directories"],
        "files": before["files"],
        "fileRanges": before["file_ranges"],
        "cars": before["cars"],
        "carBlocks": before["car_blocks"],
        "carFiles": 0,
        "unrecordedCarFiles": 0,
    }
    # Nothing of it is left, not even rows whose links were set to NULL: every table holds
    # exactly the other preparation's rows.
    assert prep_counts(db, kept) == kept_before
    assert table_counts(db) == kept_before
    # Without the flag the CAR files stay.
    assert sorted(gone.output.glob("*.car")) == cars and unrelated.exists()
    assert [p["name"] for p in client.get("/api/preparations").json()] == ["kept"]

    again = client.delete("/api/preparations/gone")
    assert again.status_code == 404 and 'preparation "gone" not found' in again.json()["error"]


def test_delete_cars_removes_only_its_own_car_files(
    admin_server: AdminServer, db: Database, tmp_path: Path
) -> None:
    client = admin_server.client()
    prep = packed_preparation(db, tmp_path, "withcars", FILES)
    cars = sorted(prep.output.glob("*.car"))
    pieces = client.get("/api/preparations/withcars/pieces").json()
    assert {p["pieceCid"] + ".car" for p in pieces} == {car.name for car in cars}
    # Not recorded in its cars rows: a lookalike CAR name and any other file stay.
    lookalike = prep.output / "baga6ea4seaqlookalike.car"
    lookalike.write_bytes(b"x")
    notes = prep.output / "notes.txt"
    notes.write_text("keep me")

    reply = client.delete("/api/preparations/withcars", params={"deleteCars": "true"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["removed"]["carFiles"] == len(cars)
    assert sorted(prep.output.iterdir()) == sorted([lookalike, notes])
    assert table_counts(db) == dict.fromkeys(TABLES, 0)
    bad = client.delete("/api/preparations/withcars", params={"deleteCars": "maybe"})
    assert bad.status_code == 400 and "deleteCars" in bad.json()["error"]
