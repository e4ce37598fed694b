"""Errors of the worker manager; the API maps each to one HTTP status (api/errors.py)."""

from __future__ import annotations


class ManagerError(Exception):
    """Base class: the message is a sentence for the operator."""


class WorkerAlreadyRunning(ManagerError):
    """A start while a worker runs (or starts, or stops) for this state dir (HTTP 409).

    `pid` and `run_id` name the current run; both are None while that run is still starting
    (its worker does not exist yet) and the wait for it ran out.
    """

    def __init__(self, pid: int | None, run_id: int | None = None) -> None:
        super().__init__("Worker already running" if pid is not None else "Worker is starting")
        self.pid = pid
        self.run_id = run_id


class WorkerStarting(ManagerError):
    """A stop while a start is still under way and the wait for it ran out (HTTP 409)."""

    def __init__(self) -> None:
        super().__init__("Worker is starting: try the stop again once it runs")


class WorkerNotRunning(ManagerError):
    """A stop while no worker process is alive (HTTP 404)."""

    def __init__(self) -> None:
        super().__init__("Worker not running")


class NoWorkerLogs(ManagerError):
    """Logs asked for while no worker ever ran in this state dir (HTTP 404)."""

    def __init__(self) -> None:
        super().__init__("No worker has run yet: there are no logs")


class WorkerSpawnFailed(ManagerError):
    """The worker process could not be started (HTTP 500, with the reason)."""
