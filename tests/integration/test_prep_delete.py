"""delete_preparation on its own: a delete cut short is finished by deleting again; storages and
CAR files another preparation uses are kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from dataset_worker.db import Database
from dataset_worker.db.models import Car, Job, JobState, JobType, OutputAttachment, Storage
from dataset_worker.prep import Conflict, NotFound
from dataset_worker.prep import delete as prep_delete
from dataset_worker.prep.delete import delete_preparation
from tests.support.preps import TABLES, claim, packed_preparation, prep_counts, table_counts

KIB = 1024
FILES: dict[str, int | bytes] = {
    **{f"d{d}/e{e}/f{i}.bin": 100 * KIB + i for d in range(2) for e in range(2) for i in range(3)},
    "top.bin": 1200 * KIB,
}


def test_a_delete_cut_short_is_finished_by_deleting_again(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prep = packed_preparation(db, tmp_path, "resumed", FILES)
    before = prep_counts(db, prep)
    monkeypatch.setattr(prep_delete, "BATCH", 3)  # several transactions per table

    def crash(_db: Database, _attachment: int) -> int:
        raise RuntimeError("power cut")

    monkeypatch.setattr(prep_delete, "_delete_directories", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        delete_preparation(db, "resumed", delete_cars=True)
    # Pieces and files went, folders and the preparation stayed: it can still be found.
    partial = prep_counts(db, prep)
    assert partial["files"] == partial["cars"] == partial["car_blocks"] == 0
    assert partial["directories"] == before["directories"] and partial["preparations"] == 1
    assert not list(prep.output.glob("*.car"))

    monkeypatch.undo()
    monkeypatch.setattr(prep_delete, "BATCH", 3)
    report = delete_preparation(db, "resumed", delete_cars=True)
    assert report.removed.directories == before["directories"]
    assert report.removed.files == 0 and report.removed.car_files == 0  # done the first time
    assert report.removed.jobs == before["jobs"] and report.removed.preparations == 1
    assert table_counts(db) == dict.fromkeys(TABLES, 0)
    with pytest.raises(NotFound):
        delete_preparation(db, "resumed")


def test_storages_and_car_files_another_preparation_uses_are_kept(
    db: Database, tmp_path: Path
) -> None:
    first = packed_preparation(
        db, tmp_path, "first", {"a.bin": 50 * KIB, "b.bin": 990 * KIB}, daggen=False
    )
    second = packed_preparation(db, tmp_path, "second", {"b.bin": 60 * KIB}, daggen=False)
    assert len(list(first.output.glob("*.car"))) == 2
    with db.write() as session:
        # "second" also writes to first's output folder, and records first's CAR as its own.
        output = session.scalars(select(Storage).where(Storage.name == "first-output")).one()
        session.add(OutputAttachment(preparation_id=second.id, storage_id=output.id))
        theirs = session.scalars(select(Car).where(Car.preparation_id == first.id)).first()
        assert theirs is not None
        session.add(
            Car(
                piece_type=theirs.piece_type,
                piece_cid=theirs.piece_cid,
                piece_size=theirs.piece_size,
                root_cid=theirs.root_cid,
                file_size=theirs.file_size,
                storage_id=output.id,
                storage_path=theirs.storage_path,
                preparation_id=second.id,
            )
        )
        shared_car = theirs.storage_path
    # A cars row naming a file that is not "<pieceCID>.car" never leads to that file.
    stray = first.output / "notes.txt"
    stray.write_text("keep")
    with db.write() as session:
        session.execute(
            update(Car).where(Car.preparation_id == first.id, Car.storage_path != shared_car)
            .values(storage_path="notes.txt")
        )  # fmt: skip

    report = delete_preparation(db, "first", delete_cars=True)
    assert report.kept_storages == ["first-output"]
    assert report.removed.storages == 1  # first-source only
    assert report.removed.car_files == 0
    assert (first.output / shared_car).exists() and stray.exists()
    with db.read() as session:
        names = set(session.scalars(select(Storage.name)))
    assert names == {"first-output", "second-source", "second-output"}
    assert prep_counts(db, second)["output_attachments"] == 2


def test_a_job_started_during_the_delete_stops_it_before_the_preparation_goes(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prep = packed_preparation(db, tmp_path, "busy", {"a.bin": 10 * KIB}, daggen=False)
    with db.read() as session:
        job = session.scalars(select(Job.id).where(Job.type == JobType.PACK)).one()
    jobs = prep_counts(db, prep)["jobs"]
    original = prep_delete._delete_directories

    def then_claim(database: Database, attachment: int) -> int:
        deleted = original(database, attachment)
        claim(db, job)  # someone ran start-pack and a worker took it, mid-delete
        return deleted

    monkeypatch.setattr(prep_delete, "_delete_directories", then_claim)
    with pytest.raises(Conflict, match=f"pack job {job}"):
        delete_preparation(db, "busy")
    left = prep_counts(db, prep)
    assert left["preparations"] == 1 and left["jobs"] == jobs and left["files"] == 0

    monkeypatch.undo()
    with db.write() as session:
        session.execute(update(Job).where(Job.id == job).values(state=JobState.COMPLETE))
    assert delete_preparation(db, "busy").removed.preparations == 1
    assert table_counts(db) == dict.fromkeys(TABLES, 0)
