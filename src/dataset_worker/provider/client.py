"""Downloading a piece from a content provider the way Boost does: HEAD, then parallel ranges.

The piece is cut into chunks handed out in order to `connections` threads, each with its own
keep-alive connection. A dropped connection costs only the rest of its chunk: the remaining bytes
are asked for again (If-Range = the ETag, so a changed piece is never mixed in), with backoff and
a bounded number of attempts. A hashing thread follows the contiguous prefix written so far, so
the piece CID is computed while the download runs. The bytes go to FILE.part, renamed to FILE when
the piece CID matches, or to FILE.bad when it does not.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import MAX_PAYLOAD, MIN_PAYLOAD, CommP, CommPError, pad_commp
from dataset_worker.provider.piececid import parse_piece_cid

MIN_CHUNK = 64 << 10
MAX_CHUNK = 64 << 20
MAX_ATTEMPTS = 6  # failed tries in a row on one chunk without a single new byte
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 8.0
HASH_STEP = 16 << 20  # bytes hashed per call (the C core releases the GIL meanwhile)
Progress = Callable[[int], object]


class FetchError(Exception):
    """The piece could not be downloaded, or its bytes do not match its piece CID."""


@dataclass(frozen=True)
class FetchResult:
    """A verified download."""

    path: Path
    size: int
    piece_size: int
    seconds: float
    retries: int


class _Chunk:
    """One chunk's byte span and how far it has been written."""

    __slots__ = ("end", "start", "written")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end  # exclusive
        self.written = start


class _Progress:
    """Chunk positions shared by the download threads and the hashing thread."""

    def __init__(self, chunks: list[_Chunk], on_bytes: Progress | None) -> None:
        self.chunks = chunks
        self.cond = threading.Condition()
        self.failed: BaseException | None = None
        self.stopped = False
        self.retries = 0
        self._on_bytes = on_bytes
        self._next = 0
        self._prefix_chunk = 0

    def take(self) -> _Chunk | None:
        """The next chunk to fetch, or None when there is none or the download is over."""
        with self.cond:
            if self.stopped or self.failed is not None or self._next >= len(self.chunks):
                return None
            chunk = self.chunks[self._next]
            self._next += 1
            return chunk

    @property
    def over(self) -> bool:
        """True once a thread failed or the download was stopped: workers leave."""
        return self.stopped or self.failed is not None

    def advance(self, chunk: _Chunk, n: int) -> None:
        """Record `n` more bytes written at the end of `chunk`'s written part."""
        with self.cond:
            chunk.written += n
            self.cond.notify_all()
        if self._on_bytes is not None:
            self._on_bytes(n)

    def fail(self, exc: BaseException) -> None:
        """Record the first failure; everyone stops."""
        with self.cond:
            if self.failed is None:
                self.failed = exc
            self.cond.notify_all()

    def stop(self) -> None:
        """Tell the workers to leave (the hashing is over, one way or another)."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def wait_prefix(self, after: int) -> int:
        """Block until the contiguous written prefix passes `after`; returns its end.

        Raises a worker's failure as soon as there is one.
        """
        with self.cond:
            while True:
                if self.failed is not None:
                    raise self.failed
                end = self._prefix_end()
                if end > after:
                    return end
                self.cond.wait()

    def _prefix_end(self) -> int:
        while self._prefix_chunk < len(self.chunks):
            chunk = self.chunks[self._prefix_chunk]
            if chunk.written < chunk.end:
                return chunk.written
            self._prefix_chunk += 1
        return self.chunks[-1].end


def fetch_piece(
    base_url: str,
    piece_cid_text: str,
    output: Path,
    *,
    connections: int = 5,
    token: str | None = None,
    on_bytes: Progress | None = None,
    on_size: Callable[[int], object] | None = None,
    timeout: float = 60.0,
) -> FetchResult:
    """Download and verify one piece into `output`; FetchError says what went wrong."""
    expected = parse_piece_cid(piece_cid_text)
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{base_url.rstrip('/')}/piece/{piece_cid_text}"
    limits = httpx.Limits(
        max_connections=connections + 1, max_keepalive_connections=connections + 1
    )
    with httpx.Client(
        headers=headers, timeout=httpx.Timeout(timeout, connect=10.0), limits=limits
    ) as client:
        size, etag = _head(client, url)
        if on_size is not None:
            on_size(size)
        part = output.with_name(output.name + ".part")
        chunks = _chunks(size, connections)
        progress = _Progress(chunks, on_bytes)
        digest = _download(client, url, etag, size, part, progress, connections)
        piece_size = _verify(client, base_url, piece_cid_text, expected, digest, part, output)
    os.replace(part, output)
    return FetchResult(output, size, piece_size, time.monotonic() - started, progress.retries)


def _head(client: httpx.Client, url: str) -> tuple[int, str]:
    """Size and ETag from HEAD; FetchError with the server's reason otherwise."""
    try:
        reply = client.head(url)
    except httpx.HTTPError as exc:
        raise FetchError(f"HEAD {url} failed: {exc}") from None
    if reply.status_code != 200:
        raise FetchError(f"HEAD {url}: {reply.status_code} {_reason(client, url, reply)}")
    length = reply.headers.get("content-length")
    if length is None or not (length.isascii() and length.isdigit()):
        raise FetchError(f"HEAD {url}: no Content-Length in the reply")
    if reply.headers.get("accept-ranges", "").lower() != "bytes":
        raise FetchError(f"HEAD {url}: the server does not offer byte ranges (Accept-Ranges)")
    size = int(length)
    if not MIN_PAYLOAD <= size <= MAX_PAYLOAD:
        raise FetchError(f"HEAD {url}: a piece of {size} bytes is outside the commP limits")
    return size, reply.headers.get("etag", "")


def _reason(client: httpx.Client, url: str, reply: httpx.Response) -> str:
    """The server's error sentence (HEAD has no body: ask again with GET for it)."""
    if reply.request.method == "HEAD":
        try:
            with client.stream("GET", url, headers={"Range": "bytes=0-0"}) as again:
                again.read()
                reply = again
        except httpx.HTTPError:
            return reply.reason_phrase
    try:
        body = reply.json()
    except ValueError:
        return reply.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return reply.reason_phrase


def _chunks(size: int, connections: int) -> list[_Chunk]:
    """In-order chunks, about four per connection (64 KiB to 64 MiB each), so every connection
    stays busy to the end and the hashed prefix grows steadily."""
    target = -(-size // (connections * 4))
    chunk = min(MAX_CHUNK, max(MIN_CHUNK, target))
    return [_Chunk(start, min(start + chunk, size)) for start in range(0, size, chunk)]


def _download(
    client: httpx.Client,
    url: str,
    etag: str,
    size: int,
    part: Path,
    progress: _Progress,
    connections: int,
) -> bytes:
    """Fetch every chunk into `part` while hashing; returns the raw commitment.

    On any failure `part` is removed.
    """
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    complete = False
    try:
        os.ftruncate(fd, size)
        workers = [
            threading.Thread(
                target=_worker, args=(client, url, etag, size, fd, progress), daemon=True
            )
            for _ in range(min(connections, len(progress.chunks)))
        ]
        for worker in workers:
            worker.start()
        try:
            commitment = _hash_prefix(fd, size, progress)
        finally:
            progress.stop()
            for worker in workers:
                worker.join()
        os.fsync(fd)
        complete = True
        return commitment
    finally:
        os.close(fd)
        if not complete:
            part.unlink(missing_ok=True)


def _hash_prefix(fd: int, size: int, progress: _Progress) -> bytes:
    """commP of the file's bytes, read in order as the contiguous prefix grows.

    The file is mapped, so the hasher reads the page cache in place instead of copying it out.
    """
    calc = CommP()
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as mapped:
        view = memoryview(mapped)
        try:
            done = 0
            while done < size:
                ready = progress.wait_prefix(done)
                while done < ready:
                    step = min(HASH_STEP, ready - done)
                    calc.update(view[done : done + step])
                    done += step
        finally:
            view.release()
    try:
        return calc.digest().commitment
    except CommPError as exc:
        raise FetchError(str(exc)) from None


def _worker(
    client: httpx.Client, url: str, etag: str, size: int, fd: int, progress: _Progress
) -> None:
    try:
        while (chunk := progress.take()) is not None:
            _fetch_chunk(client, url, etag, size, fd, chunk, progress)
    except BaseException as exc:
        progress.fail(exc)


def _fetch_chunk(
    client: httpx.Client,
    url: str,
    etag: str,
    size: int,
    fd: int,
    chunk: _Chunk,
    progress: _Progress,
) -> None:
    """Fetch what is missing of one chunk, retrying a dropped transfer from where it stopped."""
    failures = 0
    delay = BACKOFF_FIRST
    while chunk.written < chunk.end:
        if progress.over:
            return
        before = chunk.written
        try:
            _fetch_rest(client, url, etag, size, fd, chunk, progress)
        except (httpx.TransportError, _Retryable) as exc:
            failures = 0 if chunk.written > before else failures + 1
            if failures >= MAX_ATTEMPTS:
                raise FetchError(
                    f"bytes {chunk.written}-{chunk.end - 1}: giving up after {failures} "
                    f"attempts without progress: {exc}"
                ) from None
            with progress.cond:
                progress.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)


class _Retryable(Exception):
    """A reply worth asking again for (a server error, a body cut short)."""


def _fetch_rest(
    client: httpx.Client,
    url: str,
    etag: str,
    size: int,
    fd: int,
    chunk: _Chunk,
    progress: _Progress,
) -> None:
    first, last = chunk.written, chunk.end - 1
    headers = {"Range": f"bytes={first}-{last}"}
    if etag:
        headers["If-Range"] = etag
    with client.stream("GET", url, headers=headers) as reply:
        if reply.status_code >= 500 or reply.status_code == 429:
            raise _Retryable(f"GET {url}: {reply.status_code} {reply.reason_phrase}")
        if reply.status_code != 206:
            reply.read()
            raise FetchError(
                f"GET {url} bytes {first}-{last}: {reply.status_code} "
                f"{_reason(client, url, reply)}"
                + (" (the piece changed on the server)" if reply.status_code == 200 else "")
            )
        expected = f"bytes {first}-{last}/{size}"
        if reply.headers.get("content-range") != expected:
            raise FetchError(
                f"GET {url}: asked for {expected}, got Content-Range "
                f"{reply.headers.get('content-range')!r}"
            )
        position = first
        for data in reply.iter_raw():
            if position + len(data) > chunk.end:
                raise FetchError(f"GET {url}: the server sent more than the range {expected}")
            _write_all(fd, data, position)
            position += len(data)
            progress.advance(chunk, len(data))
            if progress.over:
                return
        if position < chunk.end:
            raise _Retryable(f"the transfer ended at byte {position} of {expected}")


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _verify(
    client: httpx.Client,
    base_url: str,
    piece_cid_text: str,
    expected: bytes,
    commitment: bytes,
    part: Path,
    output: Path,
) -> int:
    """The piece size when the bytes match the piece CID; else FILE.bad and FetchError.

    The commitment of the bytes is first compared at its natural piece size. A piece padded to a
    larger minimum size (padding not in the file) matches once lifted to the size the provider's
    metadata records.
    """
    size = part.stat().st_size
    natural = _natural_piece_size(size)
    if piece_cid(commitment) == expected:
        return natural
    recorded = _recorded_piece_size(client, base_url, piece_cid_text)
    if recorded is not None and recorded > natural:
        if piece_cid(pad_commp(commitment, natural, recorded)) == expected:
            return recorded
    bad = output.with_name(output.name + ".bad")
    os.replace(part, bad)
    got = cid_to_str(piece_cid(commitment))
    raise FetchError(
        f"the downloaded bytes have piece CID {got} (piece size {natural}), not "
        f"{piece_cid_text}: kept as {bad} for inspection"
    )


def _natural_piece_size(size: int) -> int:
    expanded = (size + 126) // 127 * 128
    return 1 << (expanded - 1).bit_length()


def _recorded_piece_size(client: httpx.Client, base_url: str, piece_cid_text: str) -> int | None:
    """pieceSize from GET /piece/metadata/{cid}, or None when the server does not say."""
    try:
        reply = client.get(f"{base_url.rstrip('/')}/piece/metadata/{piece_cid_text}?limit=1")
        value = reply.json().get("pieceSize") if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    if isinstance(value, int) and value > 0 and value & (value - 1) == 0:
        return value
    return None
