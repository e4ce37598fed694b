"""The status reply (docs/api.md#worker-status), serialised once per worker state.

Everything in the reply but the uptime stays the same while the worker runs, so the body is
kept as two byte strings around the uptime's value; a request compares the manager's status
with the one the body was made from and fills in the uptime. Any other change (start, exit,
stop, a failed start) builds a new body.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pydantic_core

from dataset_worker.api.schemas import LastRun, StatusReply
from dataset_worker.durations import format_duration
from dataset_worker.manager.results import WorkerStatus

# Stands for the uptime while the body is serialised (a config holding it is handled too).
_PLACEHOLDER = "\x00uptime\x00"
_PLACEHOLDER_JSON = pydantic_core.to_json(_PLACEHOLDER)


class StatusReplies:
    """Serialised status replies; used from one event loop."""

    def __init__(self) -> None:
        self._made_from: WorkerStatus | None = None
        self._parts: tuple[bytes, ...] | None = None

    def render(self, status: WorkerStatus) -> bytes:
        """The JSON body for `status`."""
        without_uptime = replace(status, uptime_seconds=None)
        if without_uptime != self._made_from:
            self._parts = _split(status)
            self._made_from = without_uptime
        if self._parts is None:  # the placeholder was found elsewhere in the body
            return status_reply(status).model_dump_json(by_alias=True).encode()
        if len(self._parts) == 1:
            return self._parts[0]
        before, after = self._parts
        return b"".join((before, json.dumps(_uptime(status)).encode(), after))


def status_reply(status: WorkerStatus) -> StatusReply:
    """The reply model for `status`."""
    last = status.last_run
    return StatusReply(
        running=status.running,
        state=str(status.state),
        pid=status.pid,
        config=status.config,
        start_time=status.start_time,
        uptime=_uptime(status),
        run_id=status.run_id,
        last_run=LastRun(
            run_id=last.run_id,
            pid=last.pid,
            start_time=last.start_time,
            end_time=last.end_time,
            exit_code=last.exit_code,
            signal=last.signal,
            config=last.config,
        )
        if last
        else None,
        error=status.error,
    )


def _uptime(status: WorkerStatus) -> str | None:
    if status.uptime_seconds is None:
        return None
    return format_duration(round(status.uptime_seconds))


def _split(status: WorkerStatus) -> tuple[bytes, ...] | None:
    """The body as one piece (no uptime), or as the pieces before and after the uptime; None
    if the body cannot be split (a config value holding the placeholder)."""
    reply = status_reply(status)
    if reply.uptime is None:
        return (reply.model_dump_json(by_alias=True).encode(),)
    reply.uptime = _PLACEHOLDER
    parts = tuple(reply.model_dump_json(by_alias=True).encode().split(_PLACEHOLDER_JSON))
    return parts if len(parts) == 2 else None
