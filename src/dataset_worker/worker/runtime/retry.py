"""Which job failures are worth another attempt, and when that attempt may run.

Transient: the failure says nothing about the job itself, and the same work may well succeed a
little later — a connection reset or timed out, a database lock or serialization conflict, an
object store's 5xx or SlowDown (storage code raises `TransientError` for those). Everything
else is permanent (a source file that changed or vanished, invalid settings, a bug): retrying
would only fail the same way, so the job goes to `error` at once.

A transiently failed job goes back to `ready` with `next_attempt_at` set; the claim query skips
it until then. The wait doubles per failed attempt up to a cap, times a random factor in
[0.5, 1], so that many jobs failing together (the database restarting) do not all come back in
the same instant.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from dataset_worker.db.engine import is_retryable

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_RETRY_BASE = 5.0  # seconds before the first retry (before jitter)
DEFAULT_RETRY_CAP = 300.0  # the longest wait between two attempts (before jitter)
MIN_JITTER = 0.5


class TransientError(Exception):
    """A failure worth retrying later: raise it (or a subclass) for e.g. an S3 5xx or SlowDown."""


# Network failures: ConnectionError covers resets, refusals and broken pipes; socket.timeout is
# TimeoutError; gaierror is a name lookup that failed (a resolver hiccup as often as a typo, and
# a typo still ends in `error` once the attempts run out).
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
)


def is_transient(exc: BaseException) -> bool:
    """True when `exc`, or an exception it was explicitly raised from, is a transient failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_transient_itself(current):
            return True
        current = current.__cause__  # `raise X from Y` only: an implicit context is incidental
    return False


# PostgreSQL SQLSTATEs of a server that is unreachable, restarting or full: class 08
# (connection exception), 57P01-57P03 (shut down / not accepting connections yet), 53300
# (too many connections).
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _is_transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True  # the connection to the database dropped
    sqlstate = getattr(getattr(exc, "orig", None) or exc, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
    ):
        return True
    return is_retryable(exc)  # a lock or serialization conflict (SQLSTATE / SQLite code)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a job gets, and the backoff between them (seconds)."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay: float = DEFAULT_RETRY_BASE
    max_delay: float = DEFAULT_RETRY_CAP

    def delay(self, failed_before: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after a failure, when `failed_before` attempts had failed already.

        min(cap, base * 2^failed_before) times a jitter factor in [0.5, 1].
        """
        exponent = min(failed_before, 62)  # 2**62 * base is beyond any cap; no float overflow
        ceiling = min(self.max_delay, self.base_delay * 2.0**exponent)
        return ceiling * (MIN_JITTER + (1.0 - MIN_JITTER) * rand())

    def gives_up(self, attempts: int) -> bool:
        """True when `attempts` failed attempts use up the budget (the job goes to `error`)."""
        return attempts >= self.max_attempts
