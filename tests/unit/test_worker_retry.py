"""Retries: which failures are transient, and the backoff with jitter between attempts."""

from __future__ import annotations

import errno
import socket
import sqlite3

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from dataset_worker.worker.jobs.daggen.job import DagNotReadyError
from dataset_worker.worker.runtime.retry import RetryPolicy, TransientError, is_transient


class _PgError(Exception):
    """Stands in for a psycopg error: only its `sqlstate` matters to the classifier."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _sqlite_error(code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = code
    return error


class SlowDown(TransientError):
    """What an S3 client raises for a 503 SlowDown."""


TRANSIENT = {
    "connection reset": ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    "connection refused": ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    "broken pipe": BrokenPipeError(errno.EPIPE, "Broken pipe"),
    "timeout": TimeoutError("timed out"),
    "name lookup": socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    "s3 slowdown": SlowDown("503 SlowDown"),
    "transient marker": TransientError("500 InternalError"),
    "sqlite busy": OperationalError("BEGIN", {}, _sqlite_error(5)),
    "sqlite busy snapshot": OperationalError("BEGIN", {}, _sqlite_error(517)),
    "pg serialization": OperationalError("UPDATE", {}, _PgError("40001")),
    "pg deadlock": OperationalError("UPDATE", {}, _PgError("40P01")),
    "pg connection failure": OperationalError("SELECT", {}, _PgError("08006")),
    "pg admin shutdown": OperationalError("SELECT", {}, _PgError("57P01")),
    "dropped connection": DBAPIError("SELECT", {}, Exception("gone"), connection_invalidated=True),
}

PERMANENT = {
    "source changed": ValueError("source file a.txt changed since the scan"),
    "file missing": FileNotFoundError(errno.ENOENT, "No such file or directory"),
    "permission": PermissionError(errno.EACCES, "Permission denied"),
    "disk full": OSError(errno.ENOSPC, "No space left on device"),
    "invalid settings": DagNotReadyError("the dag is not ready"),
    "bug": KeyError("missing"),
    "pg unique violation": OperationalError("INSERT", {}, _PgError("23505")),
    "sqlite corrupt": OperationalError("SELECT", {}, _sqlite_error(11)),
}


@pytest.mark.parametrize("case", TRANSIENT)
def test_transient_failures_are_retried(case: str) -> None:
    assert is_transient(TRANSIENT[case])


@pytest.mark.parametrize("case", PERMANENT)
def test_permanent_failures_are_not(case: str) -> None:
    assert not is_transient(PERMANENT[case])


def test_an_error_raised_from_a_transient_one_is_transient() -> None:
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as exc:
            raise RuntimeError("reading chunk 3 failed") from exc
    except RuntimeError as wrapped:
        assert is_transient(wrapped)


def test_an_error_merely_raised_while_handling_another_is_not() -> None:
    # Implicit context (no `from`): the new error is what went wrong.
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError:
            raise ValueError("source file changed") from None
    except ValueError as error:
        assert not is_transient(error)


def test_delay_doubles_per_failed_attempt_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=10.0)
    no_jitter = [policy.delay(n, rand=lambda: 1.0) for n in range(6)]
    assert no_jitter == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_keeps_the_delay_between_half_and_all_of_the_step() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=2.0, max_delay=60.0)
    assert policy.delay(2, rand=lambda: 0.0) == 4.0  # half of 8
    assert policy.delay(2, rand=lambda: 0.5) == 6.0
    samples = [policy.delay(2) for _ in range(500)]
    assert all(4.0 <= s <= 8.0 for s in samples)
    assert len({round(s, 6) for s in samples}) > 100  # really random, not one fixed value


def test_huge_attempt_counts_stay_at_the_cap() -> None:
    policy = RetryPolicy(max_attempts=100, base_delay=5.0, max_delay=300.0)
    assert policy.delay(10_000, rand=lambda: 1.0) == 300.0


def test_the_budget_counts_failed_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.gives_up(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
