"""Waiting on events in tests: poll a condition until a deadline, wait for a process to exit.

Never `time.sleep` as a wait, never assert how long something took (speed belongs in bench/):
wait for the event itself, and fail with what was awaited once a generous deadline passes.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_until(
    condition: Callable[[], Any],
    timeout: float = 60.0,
    what: str = "condition",
    every: float = 0.05,
) -> Any:
    """Poll `condition` until it returns something truthy and return that; fail after
    `timeout` seconds naming `what`. Every 50 ms by default: the suite keeps both cores busy,
    and a poll is work for the test and often for a server it asks."""
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


def wait_answering(
    url: str,
    process: subprocess.Popen[Any],
    timeout: float,
    what: str = "the server",
    *,
    headers: dict[str, str] | None = None,
    ok: Callable[[httpx.Response], bool] = lambda reply: reply.status_code == 200,
    log: Callable[[], str] = lambda: "",
) -> httpx.Response:
    """The first reply of GET `url` that `ok` accepts (default: a 200), polling while `process`
    runs; fail at once if it exits, or after `timeout` seconds. `log()` is added to a failure."""

    def answer() -> httpx.Response | None:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{log()}")
        try:
            reply = httpx.get(url, headers=headers, timeout=2)
        except httpx.TransportError:
            return None
        return reply if ok(reply) else None

    try:
        reply: httpx.Response = wait_until(answer, timeout, f"{what} to answer {url}", 0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log()}") from None
    return reply
