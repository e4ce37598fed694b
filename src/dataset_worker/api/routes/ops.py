"""/healthz (no auth) and /metrics (Prometheus text, auth)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dataset_worker.api.errors import error_responses
from dataset_worker.api.schemas import HealthReply

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthReply, summary="Liveness (no authentication)")
def healthz() -> HealthReply:
    """200 while the server answers."""
    return HealthReply()


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        },
        **error_responses(401),
    },
    summary="Prometheus metrics",
)
def metrics(request: Request) -> Response:
    """Worker up, uptime, starts/restarts, last exit code, jobs by type and state, bytes."""
    registry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
