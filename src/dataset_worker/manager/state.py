"""The worker process state machine (supervisord's states, for one worker per state dir).

    STOPPED ──start──▶ STARTING ──child exists──▶ RUNNING ──stop──▶ STOPPING ──gone──▶ EXITED
                           │                        │                                   │
                           └──spawn failed──▶ FATAL └──exited by itself──▶ EXITED ◀──────┘

A worker started by another server process, or by this server before a restart, is adopted:
STOPPED/EXITED/FATAL ──observed alive──▶ RUNNING. EXITED and FATAL accept a new start.
"""

from __future__ import annotations

import enum


class WorkerState(enum.StrEnum):
    """Where the worker of a state dir is in its life."""

    STOPPED = "stopped"  # no worker has run in this state dir
    STARTING = "starting"  # spawning; the child does not exist yet
    RUNNING = "running"
    STOPPING = "stopping"  # SIGTERM sent, waiting for the exit (then SIGKILL)
    EXITED = "exited"  # the last run ended, by itself or by a stop
    FATAL = "fatal"  # the last start failed before a worker existed


ALLOWED: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.STOPPED: frozenset({WorkerState.STARTING, WorkerState.RUNNING, WorkerState.EXITED}),
    WorkerState.STARTING: frozenset({WorkerState.RUNNING, WorkerState.FATAL, WorkerState.EXITED}),
    WorkerState.RUNNING: frozenset({WorkerState.STOPPING, WorkerState.EXITED}),
    WorkerState.STOPPING: frozenset({WorkerState.EXITED, WorkerState.RUNNING}),
    WorkerState.EXITED: frozenset({WorkerState.STARTING, WorkerState.RUNNING}),
    WorkerState.FATAL: frozenset({WorkerState.STARTING, WorkerState.RUNNING, WorkerState.EXITED}),
}


class IllegalTransition(RuntimeError):
    """A state change the machine does not allow (a bug in the manager, never user input)."""


def check_transition(current: WorkerState, new: WorkerState) -> None:
    """Raise IllegalTransition unless `current → new` is allowed (staying put always is)."""
    if new != current and new not in ALLOWED[current]:
        raise IllegalTransition(f"worker state cannot go from {current} to {new}")
