"""The views serialise with camelCase keys, UTC "Z" timestamps and base32 CIDs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from dataset_worker.content.cid import cid_to_str, piece_cid, raw_cid
from dataset_worker.content.piececid2 import piece_cid_v2
from dataset_worker.db.models import Car, JobState, JobType, PieceType
from dataset_worker.prep.views import (
    CreatePreparationRequest,
    JobListItem,
    PieceView,
    PreparationStatus,
    as_utc,
)


def test_request_reads_camel_case_with_defaults() -> None:
    req = CreatePreparationRequest.model_validate(
        {"name": "p", "source": "/s", "output": "/o", "maxSize": "1GiB", "noDag": True}
    )
    assert req.max_size == "1GiB"
    assert req.no_dag is True
    assert req.piece_size is None
    assert req.min_piece_size == "1MiB"
    assert req.delete_after_export is False
    assert CreatePreparationRequest(name="p", source="/s").max_size == "31.5GiB"


def test_request_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="maxSizes"):
        CreatePreparationRequest.model_validate({"name": "p", "source": "/s", "maxSizes": "1"})


def test_as_utc_treats_naive_values_as_utc_and_converts_others() -> None:
    naive = datetime(2024, 5, 1, 12, 0, 0)
    assert as_utc(naive) == datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    plus_two = datetime(2024, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert as_utc(plus_two).isoformat() == "2024-05-01T12:00:00+00:00"


def test_job_list_item_json_has_rfc3339_z_times() -> None:
    item = JobListItem(
        id=7,
        type=JobType.PACK,
        status=JobState.COMPLETE,
        started=datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
        finished=as_utc(datetime(2024, 5, 1, 12, 0, 3, 250000)),
        preparation="demo",
        worker=None,
        error=None,
    )
    assert item.model_dump(mode="json", by_alias=True) == {
        "id": 7,
        "type": "pack",
        "status": "complete",
        "started": "2024-05-01T12:00:00Z",
        "finished": "2024-05-01T12:00:03.250000Z",
        "preparation": "demo",
        "worker": None,
        "error": None,
        "attempts": 0,
        "nextAttemptAt": None,
        "lastWorker": None,
        "lastWorkerHost": None,
    }


def test_piece_view_from_car_row() -> None:
    commitment = bytes(range(32))
    root = raw_cid(b"hello")
    car = Car(
        id=3,
        created_at=datetime(2024, 1, 2, 3, 4, 5),
        piece_type=PieceType.DATA,
        piece_cid=piece_cid(commitment),
        piece_size=1 << 20,
        root_cid=root,
        file_size=1234,
        min_piece_size_padding=0,
        storage_id=2,
        storage_path=f"{cid_to_str(piece_cid(commitment))}.car",
        num_of_files=4,
        preparation_id=1,
        attachment_id=1,
        job_id=9,
    )
    data = PieceView.from_model(car).model_dump(mode="json", by_alias=True)
    assert data["pieceCid"].startswith("baga")
    assert data["pieceCid"] == cid_to_str(piece_cid(commitment))
    assert data["rootCid"] == cid_to_str(root)
    assert data["pieceType"] == "data"
    assert data["createdAt"] == "2024-01-02T03:04:05Z"
    assert data["storagePath"] == data["pieceCid"] + ".car"
    assert {"pieceSize", "fileSize", "minPieceSizePadding", "numOfFiles", "jobId"} <= data.keys()


def test_piece_view_shows_an_undefined_root_as_empty_string() -> None:
    car = Car(
        id=1,
        created_at=datetime(2024, 1, 1),
        piece_type=PieceType.DAG,
        piece_cid=piece_cid(bytes(32)),
        piece_size=1 << 20,
        root_cid=b"",
        file_size=100,
        min_piece_size_padding=0,
        storage_id=None,
        storage_path="",
        num_of_files=0,
        preparation_id=None,
        attachment_id=None,
        job_id=None,
    )
    assert PieceView.from_model(car).root_cid == ""


def test_piece_view_v2_binds_the_file_size_and_is_empty_for_impossible_sizes() -> None:
    car = Car(
        id=1,
        created_at=datetime(2024, 1, 1),
        piece_type=PieceType.DATA,
        piece_cid=piece_cid(bytes(32)),
        piece_size=1 << 20,
        root_cid=b"",
        file_size=100,
        min_piece_size_padding=0,
        storage_path="",
        num_of_files=0,
    )
    v2 = PieceView.from_model(car).piece_cid_v2
    assert v2 == piece_cid_v2(cid_to_str(piece_cid(bytes(32))), 100, 1 << 20)
    car.file_size = (1 << 20) + 1  # more than a 1 MiB piece holds
    assert PieceView.from_model(car).piece_cid_v2 == ""


def test_status_counts_helpers() -> None:
    jobs = {t: dict.fromkeys(JobState, 0) for t in JobType}
    jobs[JobType.PACK][JobState.COMPLETE] = 3
    jobs[JobType.PACK][JobState.ERROR] = 1
    jobs[JobType.SCAN][JobState.COMPLETE] = 1
    status = PreparationStatus(
        id=1,
        name="p",
        stage="error",
        auto_chain=True,
        jobs=jobs,
        files_scanned=0,
        bytes_scanned=0,
        bytes_packed=0,
        pieces=0,
        root_cid=None,
    )
    assert status.total_jobs() == 5
    assert status.count(state=JobState.COMPLETE) == 4
    assert status.count(state=JobState.COMPLETE, job_type=JobType.PACK) == 3
    data = status.model_dump(mode="json", by_alias=True)
    assert data["jobs"]["pack"]["error"] == 1
    assert list(data["jobs"]) == ["scan", "pack", "daggen"]
    assert {"filesScanned", "bytesScanned", "bytesPacked", "rootCid"} <= data.keys()
