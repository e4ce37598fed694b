"""/api/dataset-worker/logs and /logs/stream (docs/api.md#worker-logs): bounded, tailable, followable."""

from __future__ import annotations

import asyncio
import codecs
import json
import time
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from dataset_worker.api.errors import BadRequest, error_responses
from dataset_worker.api.schemas import LogsReply
from dataset_worker.api.services import Services, json_reply, services
from dataset_worker.manager.manager import WorkerManager
from dataset_worker.manager.results import WorkerLogs
from dataset_worker.manager.segments import STREAMS

router = APIRouter(prefix="/api/dataset-worker", tags=["dataset worker"])

MAX_TAIL = 100_000
MAX_CHUNK = 8 * 1024 * 1024
POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0


class Stream(StrEnum):
    stdout = "stdout"
    stderr = "stderr"


def _selected(stream: Stream | None) -> tuple[str, ...]:
    return (stream.value,) if stream else STREAMS


@router.get(
    "/logs",
    response_model=LogsReply,
    responses=error_responses(400, 401, 404),
    summary="Output of the current or last worker",
)
def logs(
    app: Annotated[Services, Depends(services)],
    stream: Annotated[Stream | None, Query(description="Only this stream.")] = None,
    tail: Annotated[int | None, Query(ge=0, le=MAX_TAIL, description="Last N lines.")] = None,
    offset: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="Byte offset to read from (see nextOffset)."),
    ] = None,
    max_bytes: Annotated[
        int | None,
        Query(alias="maxBytes", ge=1, le=MAX_CHUNK, description="Bytes per stream with offset."),
    ] = None,
) -> Response:
    """Default: the last 1 MiB of each stream (the in-memory ring buffer).

    `tail=N`: the last N lines. `offset=K`: bytes from stream offset K on (at most `maxBytes`),
    and `nextOffset` says where to continue; offsets restart at 0 with each run (`runId`).
    """
    if tail is not None and offset is not None:
        raise BadRequest("tail and offset cannot be combined: use one or the other")
    result = app.manager.logs(
        streams=_selected(stream), tail=tail, offset=offset, max_bytes=max_bytes
    )
    return json_reply(_reply(result))


def _reply(result: WorkerLogs) -> LogsReply:
    texts = {name: chunk.data.decode("utf-8", "replace") for name, chunk in result.chunks.items()}
    return LogsReply(
        stdout=texts.get("stdout", ""),
        stderr=texts.get("stderr", ""),
        run_id=result.run_id,
        running=result.running,
        pid=result.pid,
        start_offset={name: chunk.start for name, chunk in result.chunks.items()},
        next_offset={name: chunk.end for name, chunk in result.chunks.items()},
    )


@router.get(
    "/logs/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "Server-Sent Events. `event: run` data {runId, pid, running} when following "
                "starts, a new run begins or the run ends; `event: stdout` / `event: stderr` data "
                "{text, offset, nextOffset}; the event id `<runId>:<stdout>:<stderr>` resumes "
                "a stream through the Last-Event-ID header."
            ),
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **error_responses(400, 401, 404),
    },
    summary="Follow the worker's output (Server-Sent Events)",
)
async def stream_logs(
    request: Request,
    app: Annotated[Services, Depends(services)],
    stream: Annotated[Stream | None, Query(description="Only this stream.")] = None,
    tail: Annotated[
        int, Query(ge=0, le=MAX_TAIL, description="Lines of history sent first.")
    ] = 100,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> StreamingResponse:
    """Send the last `tail` lines, then every new line as it is written, until disconnected."""
    start = await to_thread.run_sync(lambda: app.manager.logs(streams=_selected(stream), tail=tail))
    offsets = {name: chunk.start for name, chunk in start.chunks.items()}
    resumed = _parse_event_id(last_event_id)
    if resumed is not None and resumed[0] == start.run_id:
        offsets = {name: resumed[1][name] for name in offsets}
    follower = _follow(request, app.manager, start.run_id, offsets)
    return StreamingResponse(
        follower,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _parse_event_id(value: str | None) -> tuple[int, dict[str, int]] | None:
    if not value:
        return None
    parts = value.split(":")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), {"stdout": int(parts[1]), "stderr": int(parts[2])}


def _decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


async def _follow(
    request: Request, manager: WorkerManager, run_id: int, offsets: dict[str, int]
) -> AsyncIterator[str]:
    # `offsets`: where the next read of each stream starts. `positions`: where the text sent so
    # far ends, which is earlier by the bytes of a character split across two reads: those
    # wait in the stream's decoder for the rest of the character instead of becoming U+FFFD.
    positions = {"stdout": 0, "stderr": 0, **offsets}
    decoders = {name: _decoder() for name in offsets}
    running: bool | None = None
    last_sent = time.monotonic()
    while not await request.is_disconnected():
        result = await to_thread.run_sync(manager.read_since, dict(offsets))
        if result.run_id != run_id:  # a new run: follow it from its first byte
            run_id, running = result.run_id, None
            offsets = dict.fromkeys(offsets, 0)
            positions = {"stdout": 0, "stderr": 0}
            decoders = {name: _decoder() for name in offsets}
            continue
        if result.running != running:
            running = result.running
            yield _event("run", {"runId": run_id, "pid": result.pid, "running": running})
            last_sent = time.monotonic()
        for name, chunk in result.chunks.items():
            if not chunk.data:
                continue
            decoder = decoders[name]
            if chunk.start != offsets[name]:
                # Output was skipped (it rotated away): a partial character cannot continue.
                decoder.reset()
                positions[name] = chunk.start
            start = positions[name]
            text = decoder.decode(chunk.data)
            offsets[name] = chunk.end
            positions[name] = chunk.end - len(decoder.getstate()[0])
            if not text:
                continue  # only the start of a character so far
            event_id = f"{run_id}:{positions['stdout']}:{positions['stderr']}"
            payload = {"text": text, "offset": start, "nextOffset": positions[name]}
            yield _event(name, payload, event_id)
            last_sent = time.monotonic()
        if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)


def _event(name: str, data: dict[str, object], event_id: str | None = None) -> str:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"
