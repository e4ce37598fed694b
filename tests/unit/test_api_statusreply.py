"""StatusReplies: the same bytes pydantic writes for every state, with only the uptime redone
while the worker's state is unchanged."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from dataset_worker.api.statusreply import StatusReplies, status_reply
from dataset_worker.manager.results import RunSummary, WorkerStatus
from dataset_worker.manager.state import WorkerState

STARTED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
RUNNING = WorkerStatus(
    state=WorkerState.RUNNING,
    running=True,
    pid=4242,
    config={"concurrency": 2, "minInterval": "5s"},
    start_time=STARTED,
    uptime_seconds=150.4,
    run_id=3,
    last_run=None,
    error=None,
)
EXITED = WorkerStatus(
    state=WorkerState.EXITED,
    running=False,
    pid=None,
    config=None,
    start_time=None,
    uptime_seconds=None,
    run_id=3,
    last_run=RunSummary(3, 4242, STARTED, STARTED, 0, None, {"concurrency": 2}),
    error=None,
)


def expected(status: WorkerStatus) -> bytes:
    return status_reply(status).model_dump_json(by_alias=True).encode()


def test_bodies_match_the_model_as_the_state_changes() -> None:
    replies = StatusReplies()
    for status in (
        RUNNING,
        replace(RUNNING, uptime_seconds=151.0),
        replace(RUNNING, uptime_seconds=3 * 3600 + 7.0),
        EXITED,
        replace(RUNNING, run_id=4, pid=5000, uptime_seconds=0.2),
        replace(EXITED, state=WorkerState.FATAL, error="cannot start: no such file"),
    ):
        assert replies.render(status) == expected(status)
    assert json.loads(replies.render(RUNNING))["uptime"] == "2m30s"


def test_a_config_holding_the_placeholder_is_still_right() -> None:
    odd = replace(RUNNING, config={"note": "\x00uptime\x00"})
    replies = StatusReplies()
    assert replies.render(odd) == expected(odd)
    assert replies.render(replace(odd, uptime_seconds=9.0)) == expected(
        replace(odd, uptime_seconds=9.0)
    )
