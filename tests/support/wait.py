"""Waiting on events in tests: poll a condition until a deadline, wait for a process to exit.

Never `time.sleep` as a wait, never assert how long something took (speed belongs in bench/):
wait for the event itself, and fail with what was awaited once a generous deadline passes.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any


def wait_until(
    condition: Callable[[], Any],
    timeout: float = 60.0,
    what: str = "condition",
    every: float = 0.02,
) -> Any:
    """Poll `condition` until it returns something truthy and return that; fail after
    `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def wait_exit(process: subprocess.Popen[Any], timeout: float, what: str = "process") -> int:
    """The exit code of `process` once it ends; kill it and fail if it is still running after
    `timeout` seconds."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{what} did not exit within {timeout:.0f}s") from None
