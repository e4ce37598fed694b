"""The sharded S3 lister on its own, with a fake folder lister: bounded buffers, walk order,
errors raised where the walk reaches the failed folder."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from dataset_worker.storage.s3 import _Listed
from dataset_worker.storage.s3shards import ShardedLister
from tests.support.wait import wait_until

SIZES = {"a": 1, "b": 50, "c": 7}


def _item(directory: str, n: int) -> _Listed:
    name = f"{directory}-{n:03d}".encode()
    return _Listed(name, name, False, name.decode(), None)


class FakeFolders:
    """Lists SIZES; counts what each folder produced; notes production beyond the buffer."""

    def __init__(self, fail: str = "") -> None:
        self.produced: dict[str, int] = dict.fromkeys(SIZES, 0)
        self.reading = threading.Event()  # the walk started reading "b"
        self.overrun = False
        self.fail = fail

    def children(self, directory: str, after: str) -> Iterator[_Listed]:
        for n in range(SIZES[directory]):
            if directory == self.fail:
                raise RuntimeError(f"listing {directory} failed")
            # chunk 1, 2 chunks ahead: items 0 and 1 wait in the buffer, item 2 waits to be
            # put; item 3 exists only once the walk took one.
            if directory == "b" and n >= 3 and not self.reading.is_set():
                self.overrun = True
            self.produced[directory] += 1
            yield _item(directory, n)


def test_folders_come_in_announcement_order_and_buffers_stay_bounded() -> None:
    fake = FakeFolders()
    lister = ShardedLister(fake.children, shards=3, chunk=1, pages_ahead=2)
    try:
        for directory in SIZES:
            lister.announce(directory, "")
        assert [i.name for i in lister.children("a")] == [_item("a", 0).name]
        wait_until(lambda: fake.produced["b"] == 3 and fake.produced["c"] == 3, 10, "full buffers")
        fake.reading.set()
        got_b = [i.name for i in lister.children("b")]
        got_c = [i.name for i in lister.children("c")]
    finally:
        lister.close()
    assert got_b == [_item("b", n).name for n in range(SIZES["b"])]
    assert got_c == [_item("c", n).name for n in range(SIZES["c"])]
    assert not fake.overrun


def test_a_failed_folder_raises_when_the_walk_reaches_it() -> None:
    fake = FakeFolders(fail="b")
    lister = ShardedLister(fake.children, shards=3, chunk=4, pages_ahead=2)
    try:
        for directory in SIZES:
            lister.announce(directory, "")
        assert len(list(lister.children("a"))) == SIZES["a"]
        with pytest.raises(RuntimeError, match="listing b failed"):
            list(lister.children("b"))
        with pytest.raises(RuntimeError, match="out of announcement order"):
            list(lister.children("a"))
    finally:
        lister.close()
