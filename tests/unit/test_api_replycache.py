"""ReplyCache and SqliteDataVersion: reuse while the SQLite file is unchanged, recompute after
any other connection's commit, one computation for simultaneous misses, errors never stored."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from dataset_worker.api.dataversion import SqliteDataVersion, for_database
from dataset_worker.api.replycache import ReplyCache
from dataset_worker.db import open_database


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "cache.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE t (x INTEGER)")
    return path


def commit(path: Path, value: int) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO t VALUES (?)", (value,))
    connection.close()


class Counter:
    """A compute function that counts its calls and returns the table's rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        with sqlite3.connect(self.path) as connection:
            rows = connection.execute("SELECT x FROM t ORDER BY x").fetchall()
        connection.close()
        return repr([x for (x,) in rows]).encode()


def test_the_data_version_changes_with_other_connections_commits(database: Path) -> None:
    version = SqliteDataVersion(str(database))
    try:
        first = version.current()
        assert first is not None and version.current() == first
        commit(database, 1)
        second = version.current()
        assert second is not None and second != first
        assert version.current() == second
    finally:
        version.close()


def test_a_sqlite_database_gets_a_data_version_of_its_file(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    check = for_database(db)
    try:
        assert isinstance(check, SqliteDataVersion)
        before = check.current()
        with db.write() as session:
            session.execute(text("CREATE TABLE seen (x INTEGER)"))
        assert check.current() != before
    finally:
        if check is not None:
            check.close()
        db.dispose()


def test_replies_are_reused_until_a_commit(database: Path) -> None:
    cache = ReplyCache(SqliteDataVersion(str(database)))
    compute = Counter(database)

    async def scenario() -> list[bytes]:
        replies = [await cache.get("all", compute) for _ in range(3)]
        commit(database, 7)
        replies += [await cache.get("all", compute) for _ in range(2)]
        replies.append(await cache.get("other", compute))
        return replies

    try:
        replies = asyncio.run(scenario())
    finally:
        cache.close()
    assert replies == [b"[]"] * 3 + [b"[7]"] * 3
    assert compute.calls == 3  # "all" before and after the commit, then "other"


def test_simultaneous_misses_share_one_computation(database: Path) -> None:
    cache = ReplyCache(SqliteDataVersion(str(database)))
    release = threading.Event()
    calls: list[int] = []

    def slow() -> bytes:
        calls.append(1)
        assert release.wait(30)
        return b"page"

    async def scenario() -> list[bytes]:
        waiting = [asyncio.ensure_future(cache.get("k", slow)) for _ in range(20)]
        await asyncio.sleep(0)  # let every request reach the cache
        release.set()
        return list(await asyncio.gather(*waiting))

    try:
        assert asyncio.run(scenario()) == [b"page"] * 20
    finally:
        cache.close()
    assert len(calls) == 1


def test_errors_reach_every_waiter_and_are_not_stored(database: Path) -> None:
    cache = ReplyCache(SqliteDataVersion(str(database)))
    outcomes: list[Callable[[], bytes]] = []

    def fail() -> bytes:
        outcomes.append(fail)
        raise LookupError("no such page")

    async def scenario() -> bytes:
        results = await asyncio.gather(
            cache.get("k", fail), cache.get("k", fail), return_exceptions=True
        )
        assert all(isinstance(result, LookupError) for result in results)
        return await cache.get("k", lambda: b"fine")

    try:
        assert asyncio.run(scenario()) == b"fine"
    finally:
        cache.close()
    assert len(outcomes) == 1


def test_the_least_recently_used_replies_go_first(database: Path) -> None:
    cache = ReplyCache(SqliteDataVersion(str(database)), max_bytes=10)
    computed: list[str] = []

    def page(key: str) -> Callable[[], bytes]:
        def compute() -> bytes:
            computed.append(key)
            return key.encode() * 4

        return compute

    async def scenario() -> None:
        for key in ("a", "b", "a", "c", "a", "b"):
            assert await cache.get(key, page(key)) == key.encode() * 4

    try:
        asyncio.run(scenario())
    finally:
        cache.close()
    # Room for two replies: "c" pushes out "b" (used before the last "a"), which is computed again.
    assert computed == ["a", "b", "c", "b"]


def test_without_a_version_check_every_request_computes(database: Path) -> None:
    cache = ReplyCache(None)
    compute = Counter(database)

    async def scenario() -> None:
        for _ in range(3):
            assert await cache.get("k", compute) == b"[]"

    asyncio.run(scenario())
    assert not cache.enabled and compute.calls == 3
