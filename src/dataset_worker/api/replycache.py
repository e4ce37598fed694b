"""Serialised replies reused while the database is unchanged, never stale.

Each entry is valid for the SQLite data version it was computed under (see dataversion.py): a
request first reads the version (microseconds), and reuses the stored reply when no connection
has committed since. The version is read *before* the query runs, so a commit landing while the
query runs leaves the entry tagged with the older version, and the next request recomputes: an
entry may be fresher than its tag, never older. Requests that miss at the same time for the
same key and version share one computation (the admin page's polls arrive in bursts after each
commit of the worker). Without a version check (PostgreSQL) every request computes.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Callable, Hashable

import anyio
import anyio.to_thread

from dataset_worker.api.dataversion import SqliteDataVersion

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
# Computations (database reads) at once. Two, so one slow page does not hold up the rest; more
# only made every page dearer in the benchmark (threads contend for the GIL; past the pool's size
# each would also open a connection of its own, about a millisecond).
DEFAULT_CONCURRENCY = 2


class ReplyCache:
    """Replies per key (the query's parameters), for the current data version only.

    Holds at most `max_bytes` of replies, dropping the least recently used first. Used from
    one event loop.
    """

    def __init__(
        self,
        version: SqliteDataVersion | None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._version = version
        self._concurrency = concurrency
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop
        self._max_bytes = max_bytes
        self._seen: int | None = None  # the data version the entries belong to
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._flights: dict[tuple[Hashable, int], asyncio.Future[bytes]] = {}

    @property
    def enabled(self) -> bool:
        """False when the database offers no exact change check (PostgreSQL)."""
        return self._version is not None

    async def get(self, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        """The reply for `key`: stored if the database is unchanged since it was computed,
        otherwise `compute()` (a blocking function, run in a worker thread). Exceptions of
        `compute` propagate and are not stored."""
        version = self._version.current() if self._version is not None else None
        if version is None:
            return await self._run(compute)
        if version != self._seen:
            self._seen = version
            self._entries.clear()
            self._size = 0
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
            return body
        flight = self._flights.get((key, version))
        if flight is None:
            # A task of its own, so a request that goes away does not cancel the computation
            # the others wait for.
            flight = asyncio.ensure_future(self._run(compute))
            self._flights[(key, version)] = flight
            flight.add_done_callback(functools.partial(self._landed, key, version))
        return await asyncio.shield(flight)

    async def _run(self, compute: Callable[[], bytes]) -> bytes:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._concurrency)
        return await anyio.to_thread.run_sync(compute, limiter=self._limiter)

    def _landed(self, key: Hashable, version: int, flight: asyncio.Future[bytes]) -> None:
        del self._flights[(key, version)]
        if flight.cancelled() or flight.exception() is not None:
            return  # exception() also marks it retrieved: the waiters got it already
        if version == self._seen:
            self._store(key, flight.result())

    def _store(self, key: Hashable, body: bytes) -> None:
        if len(body) > self._max_bytes:
            return
        previous = self._entries.pop(key, None)
        if previous is not None:
            self._size -= len(previous)
        self._entries[key] = body
        self._size += len(body)
        while self._size > self._max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._size -= len(dropped)

    def close(self) -> None:
        """Close the version check's connection."""
        if self._version is not None:
            self._version.close()
