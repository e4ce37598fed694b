"""The two requests the admin page polls, answered without FastAPI's routing and parameter layer.

GET /api/dataset-worker/status and GET /api/dataset-worker/jobs come every few seconds from each
open admin page; once their bodies come from the caches (statusreply.py, replycache.py), routing,
dependency resolution and per-parameter validation are most of a request's cost. This ASGI
middleware (inside the token check) answers the plain, valid forms of these requests itself, with
the same code the routes call, and hands everything else to the app: other methods, unknown or
repeated parameters, values the route might read differently, and every error (the route then
produces the error reply, so its shape is defined once). The routes stay the definition of the
endpoints in the OpenAPI document; tests check both paths give the same replies.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from dataset_worker.api.routes.worker import page_json
from dataset_worker.api.services import Services
from dataset_worker.db.models import JobState, JobType
from dataset_worker.prep.errors import PrepError
from dataset_worker.prep.jobs import (
    DEFAULT_LIMIT,
    MAX_CURSOR_LENGTH,
    MAX_LIMIT,
    MAX_PREPARATION_LENGTH,
    JobsQuery,
    parse_jobs_query,
)

STATUS_PATH = "/api/dataset-worker/status"
JOBS_PATH = "/api/dataset-worker/jobs"

_STATES = frozenset(member.value for member in JobState)
_TYPES = frozenset(member.value for member in JobType)
# The one spelling of a limit the route reads the same way: no sign, no leading zero.
_LIMIT = re.compile(rf"[1-9][0-9]{{0,{len(str(MAX_LIMIT)) - 1}}}")
_HEADERS_TEMPLATE = (b"content-type", b"application/json")


class PolledRoutesMiddleware:
    """Answer plain status and jobs requests directly; pass everything else to `app`."""

    def __init__(self, app: ASGIApp, *, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            if path == STATUS_PATH and not scope["query_string"]:
                status = self.services.manager.status()
                await _send_json(send, self.services.status_replies.render(status))
                return
            if path == JOBS_PATH:
                query = plain_jobs_query(scope["query_string"])
                if query is not None and await self._jobs(query, send):
                    return
        await self.app(scope, receive, send)

    async def _jobs(self, query: JobsQuery, send: Send) -> bool:
        try:
            body = await self.services.job_replies.get(
                query, lambda: page_json(self.services, query)
            )
        except PrepError:
            return False  # e.g. an unknown preparation: the route gives the error reply
        await _send_json(send, body)
        return True


def plain_jobs_query(query_string: bytes) -> JobsQuery | None:
    """The jobs query of a query string whose every parameter is known, given once, and valid
    in the one spelling the route accepts too; None for anything else."""
    try:
        pairs = parse_qsl(query_string.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    values = dict(pairs)
    if len(values) != len(pairs):
        return None
    status = values.pop("status", None)
    job_type = values.pop("type", None)
    preparation = values.pop("preparation", None)
    limit = values.pop("limit", str(DEFAULT_LIMIT))
    cursor = values.pop("cursor", None)
    if (
        values
        or (status is not None and status not in _STATES)
        or (job_type is not None and job_type not in _TYPES)
        # Longer values go to the route, which refuses them with its error reply.
        or (preparation is not None and not 0 < len(preparation) <= MAX_PREPARATION_LENGTH)
        or (cursor is not None and not 0 < len(cursor) <= MAX_CURSOR_LENGTH)
        or not _LIMIT.fullmatch(limit)
        or int(limit) > MAX_LIMIT
    ):
        return None
    try:
        return parse_jobs_query(
            status=status, type=job_type, preparation=preparation, limit=int(limit), cursor=cursor
        )
    except PrepError:
        return None


async def _send_json(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                _HEADERS_TEMPLATE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
