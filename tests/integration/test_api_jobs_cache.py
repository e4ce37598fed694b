"""GET /api/dataset-worker/jobs served from the reply cache: replies identical to the JobPage
model's JSON, and never stale — a commit from another connection or another process shows at
the very next request. (In process, through httpx's ASGI transport, on SQLite and PostgreSQL.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update

from dataset_worker.api.app import create_app
from dataset_worker.config import Settings
from dataset_worker.db import Database, open_database
from dataset_worker.db.models import Job, JobState, JobType, Preparation, SourceAttachment
from dataset_worker.prep import CreatePreparationRequest, JobPage, create_preparation

TOKEN = "cache-test-token"
JOBS = "/api/dataset-worker/jobs"


def _attachment(db: Database, tmp_path: Path, name: str) -> int:
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


def _add_job(db: Database, attachment: int, **values: Any) -> int:
    row = {"type": JobType.PACK, "state": JobState.READY, "attachment_id": attachment}
    with db.write() as session:
        return session.execute(
            insert(Job).returning(Job.id),
            [{"error_message": "", "error_stack_trace": "", **row, **values}],
        ).scalar_one()


def _serve(settings: Settings, scenario: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    app = create_app(settings, token=TOKEN)

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as client:
            await scenario(client)

    try:
        asyncio.run(run())
    finally:
        app.state.services.job_replies.close()
        app.state.services.db.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(state_dir=tmp_path / "state", database_url=database_url)


def test_replies_are_the_job_page_json(settings: Settings, db: Database, tmp_path: Path) -> None:
    alpha, beta = _attachment(db, tmp_path, "alpha"), _attachment(db, tmp_path, "beta")
    started = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    finished = datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC)
    for number in range(12):
        _add_job(
            db,
            alpha if number % 3 else beta,
            type=(JobType.SCAN, JobType.PACK, JobType.DAGGEN)[number % 3],
            state=JobState.ERROR if number % 4 == 0 else JobState.COMPLETE,
            error_message="failed: ünïcode" if number % 4 == 0 else "",
            started_at=started,
            finished_at=finished if number % 2 else None,
            attempts=number % 3,
            next_attempt_at=finished if number % 4 == 1 else None,
            last_worker_id=f"worker-{number}" if number % 2 else None,
            last_worker_host="host-ä" if number % 2 else None,
        )
    queries: list[dict[str, Any]] = [
        {},
        {"limit": 5},
        {"status": "error"},
        {"type": "pack", "status": "complete"},
        {"preparation": "beta"},
        {"preparation": "alpha", "type": "daggen", "limit": 2},
    ]

    async def scenario(client: httpx.AsyncClient) -> None:
        for params in queries:
            for _ in range(2):  # computed, then from the cache
                reply = await client.get(JOBS, params=params)
                assert reply.status_code == 200, reply.text
                assert reply.headers["content-type"] == "application/json"
                data = reply.json()
                assert JobPage.model_validate(data).model_dump(mode="json", by_alias=True) == data
        everything = (await client.get(JOBS)).json()["jobs"]
        assert everything[-1]["started"] == "2024-05-01T12:00:00.250000Z"
        assert {job["finished"] for job in everything} == {None, "2024-05-01T12:00:03Z"}
        assert {job["attempts"] for job in everything} == {0, 1, 2}
        assert {job["nextAttemptAt"] for job in everything} == {None, "2024-05-01T12:00:03Z"}
        assert {job["lastWorkerHost"] for job in everything} == {None, "host-ä"}
        odd = {f"worker-{number}" for number in range(1, 12, 2)}
        assert {job["lastWorker"] for job in everything} == {None, *odd}
        first = (await client.get(JOBS, params={"limit": 5})).json()
        second = (await client.get(JOBS, params={"limit": 5, "cursor": first["nextCursor"]})).json()
        assert first["jobs"][-1]["id"] > second["jobs"][0]["id"]

    _serve(settings, scenario)


def test_a_commit_from_another_connection_shows_at_once(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    attachment = _attachment(db, tmp_path, "alpha")
    first = _add_job(db, attachment)
    other = open_database(settings.database_url, migrate=False)  # not the app's pool

    async def scenario(client: httpx.AsyncClient) -> None:
        async def ids(**params: Any) -> list[int]:
            reply = await client.get(JOBS, params=params)
            assert reply.status_code == 200, reply.text
            return [job["id"] for job in reply.json()["jobs"]]

        assert await ids() == [first]
        assert await ids(status="ready") == [first]
        second = _add_job(other, attachment)
        assert await ids() == [second, first]
        # A retry's bookkeeping is a commit like any other: the next reply shows it.
        with other.write() as session:
            session.execute(
                update(Job)
                .where(Job.id == first)
                .values(attempts=1, next_attempt_at=datetime(2030, 1, 1, tzinfo=UTC))
            )
        [newest, oldest] = (await client.get(JOBS)).json()["jobs"]
        assert (oldest["attempts"], oldest["nextAttemptAt"]) == (1, "2030-01-01T00:00:00Z")
        assert newest["attempts"] == 0
        with other.write() as session:
            session.execute(update(Job).values(state=JobState.COMPLETE))
        assert await ids(status="ready") == []
        assert await ids() == [second, first]

    try:
        _serve(settings, scenario)
    finally:
        other.dispose()


def test_a_commit_from_another_process_shows_at_once(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    attachment = _attachment(db, tmp_path, "alpha")
    first = _add_job(db, attachment)
    insert_job = (
        "import sys\n"
        "from sqlalchemy import insert\n"
        "from dataset_worker.db import open_database\n"
        "from dataset_worker.db.models import Job\n"
        "db = open_database(sys.argv[1], migrate=False)\n"
        "with db.write() as session:\n"
        "    session.execute(insert(Job).values(type='scan', state='ready', error_message='',"
        " error_stack_trace='', attachment_id=int(sys.argv[2])))\n"
        "db.dispose()\n"
    )

    async def scenario(client: httpx.AsyncClient) -> None:
        before = (await client.get(JOBS)).json()["jobs"]
        assert [job["id"] for job in before] == [first]
        subprocess.run(
            [sys.executable, "-c", insert_job, settings.database_url, str(attachment)],
            check=True,
            timeout=60,
        )
        after = (await client.get(JOBS)).json()["jobs"]
        assert [job["type"] for job in after] == ["scan", "pack"]

    _serve(settings, scenario)


def test_errors_are_not_cached(settings: Settings, db: Database, tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        missing = await client.get(JOBS, params={"preparation": "late"})
        assert missing.status_code == 404
        assert (
            missing.json()["error"] == 'preparation "late" not found (no preparation has that name)'
        )
        _add_job(db, _attachment(db, tmp_path, "late"))
        found = await client.get(JOBS, params={"preparation": "late"})
        assert found.status_code == 200 and len(found.json()["jobs"]) == 1

    _serve(settings, scenario)


def test_the_cache_is_used_on_sqlite_only(settings: Settings, db: Database) -> None:
    app = create_app(settings, token=TOKEN)
    try:
        assert app.state.services.job_replies.enabled == db.is_sqlite
    finally:
        app.state.services.job_replies.close()
        app.state.services.db.dispose()
