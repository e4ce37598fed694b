"""Reply bodies of the worker endpoints (docs/api.md#worker-endpoints), as pydantic models for the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Reply(BaseModel):
    """camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class StartReply(Reply):
    status: Literal["started"] = "started"
    pid: int = Field(description="Pid of the worker process.")
    run_id: int = Field(description="Number of this run in the state dir (1, 2, …).")


class StopReply(Reply):
    status: Literal["stopped"] = "stopped"
    pid: int
    exit_code: int | None = Field(description="Exit code; null when a signal ended the process.")
    signal: str | None = Field(description='Signal that ended the process, e.g. "SIGKILL".')
    forced: bool = Field(description="True when the grace period ran out and SIGKILL was sent.")
    jobs_released: int | None = Field(
        description="Jobs of a killed worker put back to ready by the server (null: unknown)."
    )


class LastRun(Reply):
    run_id: int
    pid: int
    start_time: datetime
    end_time: datetime | None
    exit_code: int | None
    signal: str | None
    config: dict[str, Any]


class StatusReply(Reply):
    running: bool
    state: str = Field(description="stopped, starting, running, stopping, exited or fatal.")
    pid: int | None
    config: dict[str, Any] | None = Field(description="Effective config of the running worker.")
    start_time: datetime | None
    uptime: str | None = Field(description='Go-style duration, e.g. "2m30s".')
    run_id: int | None
    last_run: LastRun | None = Field(description="The last run, once it ended.")
    error: str | None = Field(description="Why the last start failed (state fatal).")


class LogsReply(Reply):
    stdout: str
    stderr: str
    run_id: int
    running: bool
    pid: int
    start_offset: dict[str, int] = Field(
        description="Stream offset of the first byte returned, per stream returned."
    )
    next_offset: dict[str, int] = Field(
        description="Pass back as ?offset= (with ?stream=) to follow the stream."
    )


class AuditEntry(BaseModel):
    time: str
    action: str
    config: dict[str, Any] | None
    result: dict[str, Any]
    remote: str | None


class AuditReply(BaseModel):
    entries: list[AuditEntry] = Field(description="Newest first.")


class HealthReply(BaseModel):
    status: Literal["ok"] = "ok"
