"""The polled requests answered by PolledRoutesMiddleware give exactly the replies of the
FastAPI routes; whatever the middleware does not take (errors, odd spellings) the routes
answer. (In process, through httpx's ASGI transport.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert

from dataset_worker.api.app import create_app
from dataset_worker.api.fastpath import plain_jobs_query
from dataset_worker.api.routes import preparations, worker
from dataset_worker.config import Settings
from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType
from dataset_worker.prep import CreatePreparationRequest, create_preparation
from dataset_worker.prep.jobs import (
    DEFAULT_LIMIT,
    MAX_CURSOR_LENGTH,
    MAX_LIMIT,
    MAX_PREPARATION_LENGTH,
    JobsQuery,
)
from dataset_worker.prep.lookup import MAX_KEY_LENGTH, find_preparation

TOKEN = "fastpath-test-token"
JOBS = "/api/dataset-worker/jobs"
# The middleware passes on requests with a parameter it does not know; the route ignores it.
TO_THE_ROUTE = "zz=1"


def fetch_pairs(
    settings: Settings, paths: list[str]
) -> list[tuple[httpx.Response, httpx.Response]]:
    app = create_app(settings, token=TOKEN)

    async def run() -> list[tuple[httpx.Response, httpx.Response]]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as client:
            pairs = []
            for path in paths:
                joined = f"{path}{'&' if '?' in path else '?'}{TO_THE_ROUTE}"
                pairs.append((await client.get(path), await client.get(joined)))
            return pairs

    try:
        return asyncio.run(run())
    finally:
        app.state.services.job_replies.close()
        app.state.services.db.dispose()


def db_attachment(db: Database, name: str) -> int:
    with db.read() as session:
        return find_preparation(session, name).source_attachments[0].id


def test_jobs_replies_match_the_route(tmp_path: Path, database_url: str, db: Database) -> None:
    source = tmp_path / "src"
    source.mkdir()
    create_preparation(
        db,
        CreatePreparationRequest(
            name="alpha", source=str(source), output=str(tmp_path / "o"), no_auto=True
        ),
    )
    # Jobs with every field the page shows, retry and worker bookkeeping included.
    attachment = db_attachment(db, "alpha")
    with db.write() as session:
        session.execute(
            insert(Job),
            [
                {"type": JobType.SCAN, "state": JobState.COMPLETE, "attachment_id": attachment,
                 "error_message": "", "error_stack_trace": "", "last_worker_id": "w-1",
                 "last_worker_host": "host-a", "started_at": datetime(2024, 5, 1, tzinfo=UTC),
                 "finished_at": datetime(2024, 5, 1, 0, 0, 2, tzinfo=UTC)},
                {"type": JobType.PACK, "state": JobState.READY, "attachment_id": attachment,
                 "error_message": "connection reset", "error_stack_trace": "", "attempts": 2,
                 "next_attempt_at": datetime(2030, 1, 1, tzinfo=UTC), "last_worker_id": "w-2",
                 "last_worker_host": "host-b"},
            ],
        )  # fmt: skip
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url)
    paths = [
        JOBS,
        f"{JOBS}?limit=1",
        f"{JOBS}?limit=1000&status=ready&type=scan",
        f"{JOBS}?preparation=alpha&cursor=5",
        f"{JOBS}?preparation=1",
        # Errors: every one is the route's reply.
        f"{JOBS}?preparation=ghost",
        f"{JOBS}?status=bogus",
        f"{JOBS}?status=READY",
        f"{JOBS}?limit=0",
        f"{JOBS}?limit=1001",
        f"{JOBS}?limit=ten",
        f"{JOBS}?cursor=abc",
        f"{JOBS}?cursor=",
        f"{JOBS}?preparation={'p' * 256}",
    ]
    for path, (direct, routed) in zip(paths, fetch_pairs(settings, paths), strict=True):
        assert direct.status_code == routed.status_code, path
        assert direct.headers["content-type"] == routed.headers["content-type"], path
        assert direct.json() == routed.json(), path
    [(page, routed)] = fetch_pairs(settings, [JOBS])
    assert page.status_code == 200 and page.json() == routed.json()
    [retrying, done] = page.json()["jobs"]
    assert (retrying["attempts"], retrying["nextAttemptAt"]) == (2, "2030-01-01T00:00:00Z")
    assert (retrying["error"], retrying["lastWorkerHost"]) == ("connection reset", "host-b")
    assert (done["lastWorker"], done["lastWorkerHost"], done["worker"]) == ("w-1", "host-a", None)


def test_status_replies_match_the_route(tmp_path: Path, database_url: str) -> None:
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url)
    [(direct, routed)] = fetch_pairs(settings, ["/api/dataset-worker/status"])
    assert direct.status_code == routed.status_code == 200
    assert direct.json() == routed.json()
    assert direct.json()["running"] is False


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", JobsQuery()),
        (b"limit=50", JobsQuery()),
        (
            b"status=error&type=pack&limit=7",
            JobsQuery(state=JobState.ERROR, job_type=JobType.PACK, limit=7),
        ),
        (b"preparation=my%20prep&cursor=99", JobsQuery(preparation="my prep", before=99)),
    ],
)
def test_plain_queries_are_taken(query: bytes, expected: JobsQuery) -> None:
    assert plain_jobs_query(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        b"limit=50&limit=40",  # repeated
        b"other=1",  # unknown
        b"status=",  # empty
        b"status=Ready",  # the route refuses other spellings
        b"limit=050",
        b"limit=+5",
        b"limit=1001",
        b"cursor=x",
        b"cursor=" + b"1" * 21,
        b"preparation=" + b"p" * 256,
        b"\xff=1",
        b"novalue",
    ],
)
def test_other_queries_go_to_the_route(query: bytes) -> None:
    assert plain_jobs_query(query) is None


def test_the_fast_path_and_the_routes_share_the_list_limits() -> None:
    """Both read the bounds from prep.jobs, so neither can take what the other refuses."""
    app = FastAPI()
    app.include_router(worker.router)
    app.include_router(preparations.router)
    schema = app.openapi()
    jobs = {p["name"]: p["schema"] for p in schema["paths"][JOBS]["get"]["parameters"]}
    assert jobs["limit"]["maximum"] == MAX_LIMIT and jobs["limit"]["default"] == DEFAULT_LIMIT
    assert jobs["cursor"]["anyOf"][0]["maxLength"] == MAX_CURSOR_LENGTH
    assert jobs["preparation"]["anyOf"][0]["maxLength"] == MAX_PREPARATION_LENGTH
    prep_route = schema["paths"]["/api/preparations/{name}"]["get"]["parameters"]
    assert prep_route[0]["schema"]["maxLength"] == MAX_KEY_LENGTH == MAX_PREPARATION_LENGTH

    assert plain_jobs_query(b"") == JobsQuery(limit=DEFAULT_LIMIT)
    assert plain_jobs_query(f"limit={MAX_LIMIT}".encode()) == JobsQuery(limit=MAX_LIMIT)
    assert plain_jobs_query(f"limit={MAX_LIMIT + 1}".encode()) is None
    longest = "p" * MAX_PREPARATION_LENGTH
    assert plain_jobs_query(f"preparation={longest}".encode()) == JobsQuery(preparation=longest)
    assert plain_jobs_query(f"preparation={longest}p".encode()) is None
    cursor = "1".rjust(MAX_CURSOR_LENGTH, "0")
    assert plain_jobs_query(f"cursor={cursor}".encode()) == JobsQuery(before=1)
    assert plain_jobs_query(f"cursor=0{cursor}".encode()) is None
