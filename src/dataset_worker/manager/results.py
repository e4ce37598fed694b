"""What the worker manager's operations return (the API turns them into its replies)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dataset_worker.manager.logtail import LogChunk
from dataset_worker.manager.state import WorkerState


@dataclass(frozen=True)
class StartResult:
    """A worker that now exists."""

    pid: int
    run_id: int
    config: dict[str, Any]


@dataclass(frozen=True)
class StopResult:
    """A worker that is gone: how it ended, and whether SIGKILL was needed."""

    pid: int
    exit_code: int | None
    signal: str | None
    forced: bool
    jobs_released: int | None


@dataclass(frozen=True)
class RunSummary:
    """A finished run, as status reports it (`lastRun`)."""

    run_id: int
    pid: int
    start_time: datetime
    end_time: datetime | None
    exit_code: int | None
    signal: str | None
    config: dict[str, Any]


@dataclass(frozen=True)
class WorkerStatus:
    """What status shows. `running` is true from a successful start until the process is gone."""

    state: WorkerState
    running: bool
    pid: int | None
    config: dict[str, Any] | None
    start_time: datetime | None
    uptime_seconds: float | None
    run_id: int | None
    last_run: RunSummary | None
    error: str | None


@dataclass(frozen=True)
class WorkerLogs:
    """Output of the current or last run, per requested stream."""

    run_id: int
    running: bool
    pid: int
    chunks: dict[str, LogChunk]
