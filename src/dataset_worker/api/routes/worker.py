"""/api/dataset-worker/{start,stop,status,jobs,audit} (docs/api.md#start-the-worker)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from dataset_worker.api.errors import error_responses, status_of
from dataset_worker.api.schemas import AuditReply, StartReply, StatusReply, StopReply
from dataset_worker.api.services import (
    Services,
    app_services,
    json_reply,
    remote_address,
    services,
)
from dataset_worker.db.models import JobState, JobType
from dataset_worker.manager.launchconfig import WorkerLaunchConfig
from dataset_worker.manager.manager import DEFAULT_STOP_TIMEOUT
from dataset_worker.prep import JobPage
from dataset_worker.prep.jobs import (
    DEFAULT_LIMIT,
    MAX_CURSOR_LENGTH,
    MAX_LIMIT,
    MAX_PREPARATION_LENGTH,
    JobsQuery,
    job_page_data,
    parse_jobs_query,
)

router = APIRouter(prefix="/api/dataset-worker", tags=["dataset worker"])

MAX_STOP_TIMEOUT = 3600.0


@router.post(
    "/start",
    response_model=StartReply,
    responses=error_responses(400, 401, 409, 500),
    summary="Start the worker process",
)
def start_worker(
    request: Request,
    app: Annotated[Services, Depends(services)],
    config: Annotated[
        WorkerLaunchConfig | None,
        Body(description="Every field is optional and defaults to the CLI's default."),
    ] = None,
) -> Response:
    """Start `dataset-worker run` with this config; 409 while a worker runs."""
    effective = config or WorkerLaunchConfig()
    try:
        started = app.manager.start(effective)
    except Exception as exc:
        _audit(app, request, "start", effective.as_json(), exc)
        raise
    reply = StartReply(pid=started.pid, run_id=started.run_id)
    app.audit.append(
        "start",
        config=started.config,
        result={"httpStatus": 200, **reply.model_dump(by_alias=True)},
        remote=remote_address(request),
    )
    return json_reply(reply)


@router.post(
    "/stop",
    response_model=StopReply,
    responses=error_responses(400, 401, 404, 409, 500),
    summary="Stop the worker process",
)
def stop_worker(
    request: Request,
    app: Annotated[Services, Depends(services)],
    timeout: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_STOP_TIMEOUT,
            description="Seconds of grace after SIGTERM before SIGKILL; 0: SIGKILL at once.",
        ),
    ] = DEFAULT_STOP_TIMEOUT,
) -> Response:
    """SIGTERM, wait up to `timeout` s, then SIGKILL; answers once the process is gone.

    A start under way is waited for and its worker stopped (409 only if it is still starting
    after the launch timeout).
    """
    config = _running_config(app)
    try:
        stopped = app.manager.stop(timeout)
    except Exception as exc:
        _audit(app, request, "stop", config, exc)
        raise
    reply = StopReply(
        pid=stopped.pid,
        exit_code=stopped.exit_code,
        signal=stopped.signal,
        forced=stopped.forced,
        jobs_released=stopped.jobs_released,
    )
    app.audit.append(
        "stop",
        config=config,
        result={"httpStatus": 200, **reply.model_dump(by_alias=True)},
        remote=remote_address(request),
    )
    return json_reply(reply)


@router.get(
    "/status",
    response_model=StatusReply,
    responses=error_responses(401),
    summary="Worker status",
)
async def worker_status(request: Request) -> Response:
    """Always 200: running or not, and how the last run ended."""
    # The services straight from the app, not through Depends: the admin page polls this, and
    # resolving a dependency costs about a tenth of the request.
    app = app_services(request)
    status = app.manager.status()  # non-blocking: a stat of the run record and /proc
    return Response(app.status_replies.render(status), media_type="application/json")


@router.get(
    "/jobs",
    response_model=JobPage,
    responses=error_responses(400, 401, 404),
    summary="Jobs, newest first",
)
async def jobs(
    request: Request,
    status: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    type: Annotated[JobType | None, Query(description="Only jobs of this type.")] = None,
    preparation: Annotated[
        str | None,
        Query(max_length=MAX_PREPARATION_LENGTH, description="Preparation name or id."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="nextCursor of the previous page."),
    ] = None,
) -> Response:
    """Read from the database; filters combine; pass nextCursor back as cursor."""
    app = app_services(request)
    query = parse_jobs_query(
        status=status.value if status else None,
        type=type.value if type else None,
        preparation=preparation,
        limit=limit,
        cursor=cursor,
    )
    # Async with the query in a worker thread: a reply from the cache (the database unchanged
    # since it was made) costs no thread hop.
    body = await app.job_replies.get(query, lambda: page_json(app, query))
    return Response(body, media_type="application/json")


def page_json(app: Services, query: JobsQuery) -> bytes:
    """The serialised jobs page (blocking: it queries the database)."""
    page = job_page_data(app.db, query)
    return json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode()


@router.get(
    "/audit",
    response_model=AuditReply,
    responses=error_responses(400, 401),
    summary="Audit log of starts and stops",
)
def audit(
    app: Annotated[Services, Depends(services)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Newest first: time, action, config, result, remote address."""
    return json_reply(AuditReply.model_validate({"entries": app.audit.read(limit)}))


def _running_config(app: Services) -> dict[str, Any] | None:
    record = app.manager.current_record()
    return record.config if record is not None and not record.ended else None


def _audit(
    app: Services, request: Request, action: str, config: dict[str, Any] | None, exc: Exception
) -> None:
    app.audit.append(
        action,
        config=config,
        result={"httpStatus": status_of(exc), "error": str(exc)},
        remote=remote_address(request),
    )
