"""Sharded S3 listing: the directories a breadth-first walk will visit next are listed ahead,
in parallel, while the walk consumes them in order.

The walk (`S3Source.walk`) stays one ordered stream, so what a scan records (directories, files,
ranges, pack jobs, hence CAR bytes) is identical to a one-stream listing. Only the waiting is
shared: up to `shards` directories (the root's delimiter listing gives the first prefixes, their
sub-prefixes follow) are listed at once, each by its own thread into a bounded buffer of at most
`pages_ahead` pages, so memory stays bounded and a prefix whose listing is longer than its buffer
continues at one-stream speed once the walk reaches it.

Each directory is listed exactly once, in pages, start to end; a listing error is raised where
the walk reaches that directory, so a listing that failed part way never looks complete.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataset_worker.storage.s3 import _Listed

PAGES_AHEAD = 16  # per directory listed ahead: 16 pages of 1000 keys
_POLL = 0.1  # how often a blocked lister looks whether the walk was abandoned

ListChildren = Callable[[str, str], Iterator["_Listed"]]  # (directory, list after this name)


class _End:
    """The last message of a directory's listing."""


_END = _End()


class _Ahead:
    """One directory being listed ahead into a bounded buffer of page-sized chunks."""

    def __init__(self, directory: str, after: str, pages_ahead: int) -> None:
        self.directory = directory
        self.after = after
        self.chunks: queue.Queue[list[_Listed] | BaseException | _End] = queue.Queue(pages_ahead)


class SerialLister:
    """Lists each directory when the walk reaches it (one stream)."""

    def __init__(self, children: ListChildren) -> None:
        self._children = children
        self._after: dict[str, str] = {}

    def announce(self, directory: str, after: str) -> None:
        """Remember where a resumed directory's listing starts."""
        if after:
            self._after[directory] = after

    def children(self, directory: str) -> Iterator[_Listed]:
        """The children of `directory`, in name order."""
        return self._children(directory, self._after.pop(directory, ""))

    def close(self) -> None:
        """Nothing to stop."""


class ShardedLister:
    """Lists up to `shards` announced directories ahead of the walk, in announcement order.

    `announce` must be called for each directory in the order the walk will ask for it with
    `children`; `close` stops the listers (the walk ended or was abandoned).
    """

    def __init__(
        self,
        children: ListChildren,
        shards: int,
        chunk: int,
        pages_ahead: int = PAGES_AHEAD,
    ) -> None:
        self._children = children
        self._shards = shards
        self._chunk = chunk
        self._pages_ahead = pages_ahead
        self._waiting: deque[tuple[str, str]] = deque()  # announced, not started
        self._started: deque[_Ahead] = deque()  # started, in walk order
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=shards, thread_name_prefix="s3-list")

    def announce(self, directory: str, after: str) -> None:
        """The walk will visit `directory` (listed after the name `after`, if any) after every
        directory announced before."""
        self._waiting.append((directory, after))
        self._top_up()

    def children(self, directory: str) -> Iterator[_Listed]:
        """The children of `directory` (the next announced one), in name order."""
        self._top_up()
        if not self._started or self._started[0].directory != directory:
            raise RuntimeError(f"the walk asked for {directory!r} out of announcement order")
        ahead = self._started[0]
        try:
            while True:
                message = ahead.chunks.get()
                if isinstance(message, _End):
                    return
                if isinstance(message, BaseException):
                    raise message
                yield from message
        finally:
            self._started.popleft()
            self._top_up()

    def close(self) -> None:
        """Stop listing ahead; threads blocked on a full buffer notice within `_POLL` s."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _top_up(self) -> None:
        # The head of `_started` is the one the walk reads; every started listing has its own
        # thread, so the head is never stuck behind listings that wait for buffer room.
        while self._waiting and len(self._started) < self._shards and not self._stop.is_set():
            directory, after = self._waiting.popleft()
            ahead = _Ahead(directory, after, self._pages_ahead)
            self._started.append(ahead)
            self._pool.submit(self._list, ahead)

    def _list(self, ahead: _Ahead) -> None:
        try:
            chunk: list[_Listed] = []
            for item in self._children(ahead.directory, ahead.after):
                chunk.append(item)
                if len(chunk) >= self._chunk:
                    if not self._put(ahead, chunk):
                        return
                    chunk = []
            if chunk and not self._put(ahead, chunk):
                return
            self._put(ahead, _END)
        except BaseException as exc:  # handed to the walk, which raises it in order
            self._put(ahead, exc)

    def _put(self, ahead: _Ahead, message: list[_Listed] | BaseException | _End) -> bool:
        while not self._stop.is_set():
            try:
                ahead.chunks.put(message, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False
