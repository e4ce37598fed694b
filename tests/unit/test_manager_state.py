"""The worker state machine allows exactly the documented transitions."""

from __future__ import annotations

import pytest

from dataset_worker.manager.state import ALLOWED, IllegalTransition, WorkerState, check_transition


def test_every_state_has_a_rule() -> None:
    assert set(ALLOWED) == set(WorkerState)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (WorkerState.STOPPED, WorkerState.STARTING),
        (WorkerState.STARTING, WorkerState.RUNNING),
        (WorkerState.STARTING, WorkerState.FATAL),
        (WorkerState.RUNNING, WorkerState.STOPPING),
        (WorkerState.RUNNING, WorkerState.EXITED),
        (WorkerState.STOPPING, WorkerState.EXITED),
        (WorkerState.EXITED, WorkerState.STARTING),
        (WorkerState.EXITED, WorkerState.RUNNING),
        (WorkerState.FATAL, WorkerState.STARTING),
        (WorkerState.RUNNING, WorkerState.RUNNING),
    ],
)
def test_allowed(current: WorkerState, new: WorkerState) -> None:
    check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (WorkerState.RUNNING, WorkerState.STARTING),
        (WorkerState.STOPPING, WorkerState.STARTING),
        (WorkerState.STOPPED, WorkerState.STOPPING),
        (WorkerState.EXITED, WorkerState.STOPPING),
        (WorkerState.STARTING, WorkerState.STOPPING),
    ],
)
def test_refused(current: WorkerState, new: WorkerState) -> None:
    with pytest.raises(IllegalTransition, match=f"from {current} to {new}"):
        check_transition(current, new)
