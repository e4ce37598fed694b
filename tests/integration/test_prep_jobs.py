"""list_jobs: filters, keyset cursor, limit bounds and the item shape."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType, Preparation, SourceAttachment, Worker
from dataset_worker.prep import (
    CreatePreparationRequest,
    InvalidParameter,
    NotFound,
    create_preparation,
    list_jobs,
)


def _prep(db: Database, tmp_path: Path, name: str) -> int:
    source = tmp_path / f"{name}-src"
    source.mkdir()
    req = CreatePreparationRequest(
        name=name, source=str(source), output=str(tmp_path / name), no_auto=True
    )
    create_preparation(db, req)
    with db.read() as session:
        return session.scalars(
            select(SourceAttachment.id).join(Preparation).where(Preparation.name == name)
        ).one()


def _add_jobs(db: Database, rows: list[dict[str, object]]) -> list[int]:
    with db.write() as session:
        before = session.scalar(select(Job.id).order_by(Job.id.desc()).limit(1)) or 0
        session.execute(
            insert(Job), [{"error_message": "", "error_stack_trace": "", **row} for row in rows]
        )
        return list(session.scalars(select(Job.id).where(Job.id > before).order_by(Job.id)))


@pytest.fixture
def mixed(db: Database, tmp_path: Path) -> dict[str, list[int]]:
    """Two preparations with jobs of every type and state; returns job ids per preparation."""
    a, b = _prep(db, tmp_path, "alpha"), _prep(db, tmp_path, "beta")
    ids: dict[str, list[int]] = {"alpha": [], "beta": []}
    for attachment, name in ((a, "alpha"), (b, "beta")):
        rows: list[dict[str, object]] = [
            {"type": job_type, "state": state, "attachment_id": attachment}
            for job_type in JobType
            for state in JobState
        ]
        ids[name] = _add_jobs(db, rows)
    return ids


def test_newest_first_with_every_field(db: Database, tmp_path: Path) -> None:
    attachment = _prep(db, tmp_path, "p")
    with db.write() as session:
        session.add(Worker(id="w-9", last_heartbeat=datetime.now(UTC), hostname="h"))
    started = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    finished = datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC)
    [old, failed, running] = _add_jobs(
        db,
        [
            {"type": JobType.SCAN, "state": JobState.COMPLETE, "attachment_id": attachment,
             "started_at": started, "finished_at": finished},
            {"type": JobType.PACK, "state": JobState.ERROR, "attachment_id": attachment,
             "error_message": "source file a.bin changed", "attempts": 1,
             "last_worker_id": "w-8", "last_worker_host": "old-host"},
            {"type": JobType.PACK, "state": JobState.PROCESSING, "attachment_id": attachment,
             "worker_id": "w-9", "started_at": started, "attempts": 2,
             "next_attempt_at": finished, "last_worker_id": "w-9", "last_worker_host": "h"},
        ],
    )  # fmt: skip
    page = list_jobs(db)
    assert [j.id for j in page.jobs] == [running, failed, old]
    assert page.next_cursor is None
    data = page.model_dump(mode="json", by_alias=True)
    assert data["jobs"][0] == {
        "id": running,
        "type": "pack",
        "status": "processing",
        "started": "2024-05-01T12:00:00Z",
        "finished": None,
        "preparation": "p",
        "worker": "w-9",
        "error": None,
        "attempts": 2,
        "nextAttemptAt": "2024-05-01T12:00:03Z",
        "lastWorker": "w-9",
        "lastWorkerHost": "h",
    }
    assert data["jobs"][1]["error"] == "source file a.bin changed"
    assert data["jobs"][1]["attempts"] == 1
    # The worker row is gone after the run; who ran it stays on the job.
    assert (data["jobs"][1]["worker"], data["jobs"][1]["lastWorker"]) == (None, "w-8")
    assert data["jobs"][1]["lastWorkerHost"] == "old-host"
    assert data["jobs"][2]["finished"] == "2024-05-01T12:00:03Z"
    assert data["nextCursor"] is None


def test_job_without_attachment_has_no_preparation(db: Database) -> None:
    [job] = _add_jobs(db, [{"type": JobType.PACK, "state": JobState.READY, "attachment_id": None}])
    [item] = list_jobs(db).jobs
    assert (item.id, item.preparation) == (job, None)


def test_filters(db: Database, mixed: dict[str, list[int]]) -> None:
    errors = list_jobs(db, status="error", limit=1000).jobs
    assert len(errors) == 6 and all(j.status is JobState.ERROR for j in errors)
    daggens = list_jobs(db, type="daggen", limit=1000).jobs
    assert len(daggens) == 12 and all(j.type is JobType.DAGGEN for j in daggens)
    both = list_jobs(db, type="pack", status="ready").jobs
    assert [(j.type, j.status, j.preparation) for j in both] == [
        (JobType.PACK, JobState.READY, "beta"),
        (JobType.PACK, JobState.READY, "alpha"),
    ]
    beta = list_jobs(db, preparation="beta", limit=1000).jobs
    assert [j.id for j in beta] == sorted(mixed["beta"], reverse=True)
    all_three = list_jobs(db, preparation="alpha", type="scan", status="complete").jobs
    assert len(all_three) == 1 and all_three[0].preparation == "alpha"


def test_preparation_filter_accepts_an_id(db: Database, mixed: dict[str, list[int]]) -> None:
    with db.read() as session:
        beta = session.scalars(select(Preparation.id).where(Preparation.name == "beta")).one()
    assert {j.preparation for j in list_jobs(db, preparation=str(beta)).jobs} == {"beta"}


def test_filter_values_are_case_insensitive(db: Database, mixed: dict[str, list[int]]) -> None:
    assert len(list_jobs(db, status="Ready", type="PACK").jobs) == 2


def test_unknown_preparation_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match='preparation "ghost" not found'):
        list_jobs(db, preparation="ghost")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "done"}, 'status must be one of created, ready, paused, processing, complete, error, got "done"'),
        ({"type": "copy"}, 'type must be one of scan, pack, daggen, got "copy"'),
        ({"limit": 0}, "limit must be between 1 and 1000, got 0"),
        ({"limit": 1001}, "limit must be between 1 and 1000, got 1001"),
        ({"limit": -5}, "limit must be between 1 and 1000, got -5"),
        ({"cursor": "abc"}, 'cursor "abc" is not valid'),
        ({"cursor": "-3"}, 'cursor "-3" is not valid'),
        ({"cursor": "0"}, 'cursor "0" is not valid'),
        ({"cursor": "1.5"}, 'cursor "1.5" is not valid'),
        ({"cursor": str(2**70)}, "is not valid"),
    ],
)  # fmt: skip
def test_bad_parameters_are_invalid(db: Database, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        list_jobs(db, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [1, 1000])
def test_limit_bounds_are_accepted(db: Database, limit: int) -> None:
    _add_jobs(db, [{"type": JobType.SCAN, "state": JobState.READY, "attachment_id": None}] * 3)
    assert len(list_jobs(db, limit=limit).jobs) == min(limit, 3)


def test_cursor_walks_every_job_exactly_once(db: Database, mixed: dict[str, list[int]]) -> None:
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = list_jobs(db, limit=7, cursor=cursor)
        seen += [j.id for j in page.jobs]
        pages += 1
        if page.next_cursor is None:
            break
        assert len(page.jobs) == 7
        cursor = page.next_cursor
    everything = mixed["alpha"] + mixed["beta"]
    assert seen == sorted(everything, reverse=True)
    assert pages == -(-len(everything) // 7)


def test_cursor_with_filters(db: Database, mixed: dict[str, list[int]]) -> None:
    first = list_jobs(db, preparation="alpha", type="pack", limit=4)
    assert first.next_cursor == str(first.jobs[-1].id)
    second = list_jobs(db, preparation="alpha", type="pack", limit=4, cursor=first.next_cursor)
    assert len(second.jobs) == 2 and second.next_cursor is None
    ids = [j.id for j in first.jobs + second.jobs]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6
    assert all(j.type is JobType.PACK and j.preparation == "alpha" for j in second.jobs)


def test_exact_page_has_no_next_cursor(db: Database) -> None:
    _add_jobs(db, [{"type": JobType.SCAN, "state": JobState.READY, "attachment_id": None}] * 4)
    assert list_jobs(db, limit=4).next_cursor is None
    assert list_jobs(db, limit=3).next_cursor is not None


def test_cursor_past_the_oldest_job_gives_an_empty_page(db: Database) -> None:
    [only] = _add_jobs(db, [{"type": JobType.SCAN, "state": JobState.READY, "attachment_id": None}])
    page = list_jobs(db, cursor=str(only))
    assert page.jobs == [] and page.next_cursor is None
