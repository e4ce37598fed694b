"""get_preparation_status and list_pieces over rows as the worker leaves them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dataset_worker.content.cid import cid_to_str, dag_pb_cid, piece_cid, raw_cid
from dataset_worker.db import Database
from dataset_worker.db.models import (
    Car,
    Directory,
    File,
    FileRange,
    Job,
    JobState,
    JobType,
    PieceType,
    Preparation,
    SourceAttachment,
)
from dataset_worker.prep import (
    CreatePreparationRequest,
    NotFound,
    create_preparation,
    get_preparation_status,
    list_pieces,
)
from dataset_worker.prep.status import preparation_status_data


def _prep(db: Database, tmp_path: Path, name: str) -> tuple[int, int, int]:
    """Create a preparation; return (preparation id, attachment id, root directory id)."""
    source = tmp_path / f"{name}-src"
    source.mkdir()
    req = CreatePreparationRequest(
        name=name, source=str(source), output=str(tmp_path / name), no_auto=True
    )
    prep_id = create_preparation(db, req).id
    with db.read() as session:
        attachment = session.scalars(
            select(SourceAttachment.id).where(SourceAttachment.preparation_id == prep_id)
        ).one()
        root = session.scalars(
            select(Directory.id).where(Directory.attachment_id == attachment)
        ).one()
    return prep_id, attachment, root


def _file(
    session: Session, attachment: int, directory: int, path: str, ranges: list[tuple[int, bool]]
) -> None:
    """A file whose ranges have the given lengths; True marks a range as packed (has a CID)."""
    size = sum(length for length, _ in ranges) if ranges else -1
    file = File(
        path=path,
        size=size,
        last_modified_nano=1,
        attachment_id=attachment,
        directory_id=directory,
    )
    session.add(file)
    session.flush()
    offset = 0
    for length, packed in ranges:
        cid = raw_cid(f"{path}{offset}".encode()) if packed else None
        session.add(FileRange(offset=offset, length=length, cid=cid, file_id=file.id))
        offset += length


def _car(
    prep_id: int, attachment: int, piece_type: PieceType, seed: int, root: bytes, job: int | None
) -> Car:
    commitment = bytes([seed]) * 32
    return Car(
        piece_type=piece_type,
        piece_cid=piece_cid(commitment),
        piece_size=1 << 20,
        root_cid=root,
        file_size=1000 + seed,
        storage_id=None,
        storage_path=f"{cid_to_str(piece_cid(commitment))}.car",
        num_of_files=seed,
        preparation_id=prep_id,
        attachment_id=attachment,
        job_id=job,
    )


def test_empty_preparation_has_all_zero_counts(db: Database, tmp_path: Path) -> None:
    _prep(db, tmp_path, "p")
    status = get_preparation_status(db, "p")
    assert status.name == "p"
    assert status.total_jobs() == 0
    assert set(status.jobs) == set(JobType)
    assert all(set(states) == set(JobState) for states in status.jobs.values())
    assert (status.files_scanned, status.bytes_scanned, status.bytes_packed) == (0, 0, 0)
    assert (status.pieces, status.root_cid) == (0, None)


def test_counts_bytes_pieces_and_root(db: Database, tmp_path: Path) -> None:
    prep_id, attachment, root = _prep(db, tmp_path, "p")
    other_prep, other_attachment, other_root = _prep(db, tmp_path, "other")
    old_root, new_root = dag_pb_cid(b"old"), dag_pb_cid(b"new")
    with db.write() as session:
        jobs = [
            (JobType.SCAN, JobState.COMPLETE),
            (JobType.PACK, JobState.COMPLETE),
            (JobType.PACK, JobState.COMPLETE),
            (JobType.PACK, JobState.ERROR),
            (JobType.PACK, JobState.READY),
            (JobType.DAGGEN, JobState.PROCESSING),
        ]
        rows = [Job(type=t, state=s, attachment_id=attachment) for t, s in jobs]
        rows.append(Job(type=JobType.PACK, state=JobState.READY, attachment_id=other_attachment))
        session.add_all(rows)
        session.flush()
        _file(session, attachment, root, "a.bin", [(100, True), (50, False)])
        _file(session, attachment, root, "b.bin", [(7, True)])
        _file(session, attachment, root, "empty.bin", [(0, True)])
        _file(session, attachment, root, "unknown.bin", [])  # size -1
        _file(session, other_attachment, other_root, "x.bin", [(1000, True)])
        session.add_all(
            [
                _car(prep_id, attachment, PieceType.DATA, 1, raw_cid(b"a"), rows[1].id),
                _car(prep_id, attachment, PieceType.DAG, 2, old_root, None),
                _car(prep_id, attachment, PieceType.DATA, 3, raw_cid(b"b"), rows[2].id),
                _car(prep_id, attachment, PieceType.DAG, 4, new_root, None),
                _car(other_prep, other_attachment, PieceType.DATA, 5, raw_cid(b"c"), None),
            ]
        )

    status = get_preparation_status(db, "p")

    assert status.jobs[JobType.SCAN][JobState.COMPLETE] == 1
    assert status.jobs[JobType.PACK] == {
        JobState.CREATED: 0,
        JobState.READY: 1,
        JobState.PAUSED: 0,
        JobState.PROCESSING: 0,
        JobState.COMPLETE: 2,
        JobState.ERROR: 1,
    }
    assert status.jobs[JobType.DAGGEN][JobState.PROCESSING] == 1
    assert status.total_jobs() == 6
    assert status.files_scanned == 4
    assert status.bytes_scanned == 157  # the unknown size (-1) adds nothing
    assert status.bytes_packed == 107
    assert status.pieces == 4
    assert status.root_cid == cid_to_str(new_root)  # the newest DAG piece wins
    data = status.model_dump(mode="json", by_alias=True)
    assert data["jobs"]["pack"]["complete"] == 2
    assert data["rootCid"].startswith("bafy")
    assert get_preparation_status(db, str(prep_id)).pieces == 4

    pieces = list_pieces(db, "p")
    assert [p.piece_type for p in pieces] == [
        PieceType.DATA,
        PieceType.DAG,
        PieceType.DATA,
        PieceType.DAG,
    ]
    assert [p.file_size for p in pieces] == [1001, 1002, 1003, 1004]
    assert pieces[1].root_cid == cid_to_str(old_root)
    assert pieces[0].job_id == rows[1].id and pieces[1].job_id is None
    first = pieces[0].model_dump(mode="json", by_alias=True)
    assert first["pieceCid"] == cid_to_str(piece_cid(bytes([1]) * 32))
    assert first["storagePath"] == first["pieceCid"] + ".car"
    assert first["pieceType"] == "data"
    assert [p.file_size for p in list_pieces(db, "other")] == [1005]


def test_preparation_without_pieces(db: Database, tmp_path: Path) -> None:
    _prep(db, tmp_path, "p")
    assert list_pieces(db, "p") == []


@pytest.mark.parametrize("key", ["nope", "99"])
def test_unknown_preparation(db: Database, key: str) -> None:
    with pytest.raises(NotFound, match=f'preparation "{key}" not found'):
        get_preparation_status(db, key)
    with pytest.raises(NotFound, match=f'preparation "{key}" not found'):
        list_pieces(db, key)


def test_status_of_preparation_named_by_id(db: Database, tmp_path: Path) -> None:
    prep_id, _, _ = _prep(db, tmp_path, "p")
    with db.read() as session:
        assert session.get(Preparation, prep_id) is not None
    assert get_preparation_status(db, prep_id).name == "p"


def test_last_error_is_the_newest_job_error(db: Database, tmp_path: Path) -> None:
    _, attachment, _ = _prep(db, tmp_path, "errs")
    _, other, _ = _prep(db, tmp_path, "other")
    assert get_preparation_status(db, "errs").last_error is None
    now = datetime.now(UTC)
    rows = [  # (type, state, attachment, error, attempts, finished)
        (JobType.SCAN, JobState.COMPLETE, attachment, "", 0, now),
        (JobType.PACK, JobState.ERROR, attachment, "older", 1, now - timedelta(minutes=5)),
        (JobType.PACK, JobState.READY, attachment, "retrying", 2, now - timedelta(minutes=1)),
        (JobType.PACK, JobState.ERROR, attachment, "never finished", 1, None),
        (JobType.PACK, JobState.ERROR, other, "another preparation's", 1, now),
    ]
    with db.write() as session:
        session.add_all(
            Job(type=t, state=st, attachment_id=a, error_message=e, attempts=n, finished_at=f)
            for t, st, a, e, n, f in rows
        )
    last = get_preparation_status(db, "errs").last_error
    assert last is not None
    assert (last.type, last.state, last.attempts, last.message) == (
        JobType.PACK, JobState.READY, 2, "retrying"
    )  # fmt: skip
    # The same data, light: what `prep status --json` prints and the API answers.
    data = preparation_status_data(db, "errs")
    assert data["lastError"] == {
        "jobId": last.job_id, "type": "pack", "state": "ready", "attempts": 2, "message": "retrying"
    }  # fmt: skip
    assert get_preparation_status(db, "errs").model_dump(mode="json", by_alias=True) == data
