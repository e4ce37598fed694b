"""Downloading a piece from a content provider the way Boost does: HEAD, then parallel ranges.

The piece is cut into chunks (at most 8 MiB) handed out in order to `connections` threads, each
with its own keep-alive connection. A dropped connection costs only the rest of its chunk: the
remaining bytes are asked for again (If-Range = the ETag, so a changed piece is never mixed in),
with backoff and a bounded number of attempts. The bytes go to FILE.part, renamed to FILE when
the piece CID matches, or to FILE.bad when it does not.

The folder may be shared with other users (a download into /tmp), so FILE.part is created anew
with O_EXCL|O_NOFOLLOW: a symlink planted there is never written through, and a leftover is
replaced only when it is a plain file of ours. A symlink FILE is refused. A connection that
delivers less than a read (4 MiB, or the rest of its range) within the stall timeout ends the
download, naming the range: a slow-drip server cannot keep it busy forever.

A v1 piece CID does not carry the piece's length, and zero bytes appended to (or stripped from)
a piece give the same commP while they stay within its padded size. So the length is checked
too: the HEAD Content-Length must equal the `fileSize` of the provider's
`/piece/metadata/{cid}` when the provider offers it (dataset-worker's does).

The piece may be named by its v1 or its v2 piece CID (FRC-0069). A v2 CID binds the payload
length, so a provider offering another length is refused before any byte is fetched.

The piece CID is computed while the download runs: two threads hash the piece's segments
(31.75 MiB each, aligned subtrees of the commP tree, see content/commptree.py) as their bytes
arrive, so the hashing, the slowest stage, is not left for the end and can use both cores.
Another thread flushes the written prefix to disk as it grows, so the fsync before the rename
finds little left.

The HTTP client is the standard library's http.client, not httpx: its `readinto` fills a 4 MiB
buffer in one call (a loop of recv_into in C), where httpx hands out 64 KiB pieces through
pure-Python parsing; measured on loopback, that Python work per piece competed with the hashing
for the GIL and the cores.
"""

from __future__ import annotations

import http.client
import json
import mmap
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import MAX_PAYLOAD, MIN_PAYLOAD, CommP, CommPError, pad_commp
from dataset_worker.content.commptree import SEGMENT, join_segments, segment_count, segment_result
from dataset_worker.content.piececid import PieceRef, parse_piece_ref

MIN_CHUNK = 64 << 10
MAX_CHUNK = 8 << 20  # small enough that the hashed prefix stays close behind the downloads
READ_SIZE = 4 << 20  # bytes received per readinto call and written per pwrite
CONNECT_TIMEOUT = 10.0
MAX_ERROR_BODY = 64 << 10
MAX_METADATA = 1 << 20
MAX_ATTEMPTS = 6  # failed tries in a row on one chunk without a single new byte
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 8.0
FLUSH_STEP = 128 << 20  # bytes of written prefix between two fdatasync calls
HASH_THREADS = 2  # the hashing is the slowest stage: it gets a thread per core (of two)
HASH_STEP = 16 << 20  # bytes hashed per call (the C core releases the GIL meanwhile)
STALL_TIMEOUT = 30.0  # seconds a read may take before its range counts as stalled
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
    length_check: str = ""  # what the length was checked against: "v2", "metadata" or ""


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
        self.chunk_size = chunks[0].end  # every chunk but the last
        self.reads: dict[int, _Read] = {}  # reads under way, by thread id (for the watchdog)

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
        """Block until the contiguous written prefix passes `after`; returns its end (sooner
        once the download is stopped).

        Raises a worker's failure as soon as there is one.
        """
        with self.cond:
            while True:
                if self.failed is not None:
                    raise self.failed
                end = self._prefix_end()
                if end > after or self.stopped:
                    return end
                self.cond.wait()

    def wait_written(self, after: int) -> int:
        """Block until the bytes written contiguously from `after` reach past it; returns their
        end. Everything before `after` in its chunk must have been written already.

        Raises a worker's failure as soon as there is one.
        """
        with self.cond:
            while True:
                if self.failed is not None:
                    raise self.failed
                index = after // self.chunk_size
                end = after
                while index < len(self.chunks):
                    chunk = self.chunks[index]
                    end = chunk.written
                    if chunk.written < chunk.end:
                        break
                    index += 1
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


@dataclass
class _Read:
    """One read under way: since when, on which connection, for which bytes."""

    since: float
    conn: _Connection
    first: int
    last: int


class _Retryable(Exception):
    """A failure worth asking again for (a dropped connection, a server error, a cut body)."""


class _Origin:
    """Where to connect and what every request carries; opens keep-alive connections."""

    def __init__(self, base_url: str, token: str | None, timeout: float) -> None:
        # `timeout` bounds every socket operation (the watchdog bounds whole reads).
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def connect(self) -> http.client.HTTPConnection:
        """A new connection (connecting may raise OSError)."""
        conn: http.client.HTTPConnection
        if self.https:
            import ssl

            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=CONNECT_TIMEOUT, context=context
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=CONNECT_TIMEOUT)
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout)  # the connect timeout is shorter than a read's
        return conn


class _Connection:
    """One keep-alive connection, opened on first use and again after a failure."""

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self._conn: http.client.HTTPConnection | None = None

    def send(
        self, method: str, target: str, headers: dict[str, str] | None = None
    ) -> http.client.HTTPResponse:
        """The reply's status and headers (the body is left to read); _Retryable on a network
        failure."""
        try:
            if self._conn is None or self._conn.sock is None:  # closed by the server's reply
                self._conn = self.origin.connect()
            self._conn.request(method, target, headers={**self.origin.headers, **(headers or {})})
            return self._conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise _Retryable(_describe(exc)) from None

    def close(self) -> None:
        """Drop the connection (after a failure, or with a reply not read to its end)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def abort(self) -> None:
        """Wake a read blocked on this connection from another thread (the watchdog)."""
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def fetch_piece(
    base_url: str,
    piece_cid_text: str,
    output: Path,
    *,
    connections: int = 5,
    token: str | None = None,
    on_bytes: Progress | None = None,
    on_size: Callable[[int], object] | None = None,
    stall_timeout: float = STALL_TIMEOUT,
) -> FetchResult:
    """Download and verify one piece (named by its v1 or v2 piece CID) into `output`;
    FetchError says what went wrong.

    `stall_timeout`: seconds one read (up to 4 MiB) may take before the download is given up.
    """
    expected = parse_piece_ref(piece_cid_text)
    started = time.monotonic()
    if output.is_symlink():
        raise FetchError(f"{output} is a symbolic link: refusing to replace it; give a new name")
    origin = _Origin(base_url, token, stall_timeout)
    url = f"{base_url.rstrip('/')}/piece/{piece_cid_text}"
    target = f"{origin.prefix}/piece/{piece_cid_text}"
    size, etag = _head(origin, url, target)
    if expected.payload_size is not None and size != expected.payload_size:
        raise FetchError(
            f"HEAD {url}: the provider offers {size} bytes, but the v2 piece CID binds a payload "
            f"of {expected.payload_size} bytes (trailing zeros added or removed?)"
        )
    # A v1 CID says nothing of the length: the provider's record must agree with the HEAD.
    recorded: tuple[int | None, int | None] = (None, None)
    if expected.payload_size is None:
        recorded = _recorded_sizes(origin, piece_cid_text)
    if recorded[1] is not None and recorded[1] != size:
        raise FetchError(
            f"HEAD {url}: Content-Length {size}, but the provider's piece metadata records "
            f"{recorded[1]} bytes: not the piece's bytes (zeros added or cut pass commP)"
        )
    if on_size is not None:
        on_size(size)
    part = output.with_name(output.name + ".part")
    chunks = _chunks(size, connections)
    progress = _Progress(chunks, on_bytes)
    fetch = _Fetch(origin, url, target, etag, size, progress, stall_timeout)
    digest = _download(fetch, part, connections)
    piece_size, length_check = _verify(piece_cid_text, expected, recorded, digest, part, output)
    os.replace(part, output)
    seconds = time.monotonic() - started
    return FetchResult(output, size, piece_size, seconds, progress.retries, length_check)


def _head(origin: _Origin, url: str, target: str) -> tuple[int, str]:
    """Size and ETag from HEAD; FetchError with the server's reason otherwise."""
    conn = _Connection(origin)
    try:
        try:
            reply = conn.send("HEAD", target)
            reply.read()
        except (_Retryable, OSError, http.client.HTTPException) as exc:
            raise FetchError(f"HEAD {url} failed: {exc}") from None
        if reply.status != 200:
            reason = _reason(origin, target, reply, head=True)
            raise FetchError(f"HEAD {url}: {reply.status} {reason}")
    finally:
        conn.close()
    length = reply.headers.get("content-length")
    if length is None or not (length.isascii() and length.isdigit()):
        raise FetchError(f"HEAD {url}: no Content-Length in the reply")
    if reply.headers.get("accept-ranges", "").lower() != "bytes":
        raise FetchError(f"HEAD {url}: the server does not offer byte ranges (Accept-Ranges)")
    size = int(length)
    if not MIN_PAYLOAD <= size <= MAX_PAYLOAD:
        raise FetchError(f"HEAD {url}: a piece of {size} bytes is outside the commP limits")
    return size, reply.headers.get("etag", "")


def _reason(
    origin: _Origin, target: str, reply: http.client.HTTPResponse, *, head: bool = False
) -> str:
    """The server's error sentence (HEAD has no body: ask again with GET for it)."""
    try:
        if head:
            conn = _Connection(origin)
            try:
                again = conn.send("GET", target, {"Range": "bytes=0-0"})
                body = again.read(MAX_ERROR_BODY)
            finally:
                conn.close()
        else:
            body = reply.read(MAX_ERROR_BODY)
        message = json.loads(body).get("error")
    except (_Retryable, OSError, http.client.HTTPException, ValueError, AttributeError):
        return reply.reason
    return message if isinstance(message, str) else reply.reason


def _chunks(size: int, connections: int) -> list[_Chunk]:
    """In-order chunks, at least four per connection (64 KiB to 8 MiB each), so every connection
    stays busy to the end and the hashed prefix grows steadily."""
    target = -(-size // (connections * 4))
    chunk = min(MAX_CHUNK, max(MIN_CHUNK, target))
    return [_Chunk(start, min(start + chunk, size)) for start in range(0, size, chunk)]


@dataclass(frozen=True)
class _Fetch:
    """What every download thread shares."""

    origin: _Origin
    url: str
    target: str
    etag: str
    size: int
    progress: _Progress
    stall_timeout: float


def _create_part(part: Path) -> int:
    """A new, empty FILE.part opened for writing, never through a symlink.

    A leftover FILE.part (an interrupted run) is removed first, but only when it is a plain file
    of ours with one link: anything else may be another user's trap, and is refused.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(3):
        try:
            return os.open(part, flags, 0o644)
        except FileExistsError:
            _remove_leftover(part)
    raise FetchError(f"{part}: keeps reappearing; is another program writing there?")


def _remove_leftover(part: Path) -> None:
    try:
        info = os.lstat(part)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif info.st_uid != os.geteuid():
        problem = f"belongs to another user (uid {info.st_uid})"
    elif info.st_nlink != 1:
        problem = "has other hard links"
    else:
        part.unlink(missing_ok=True)
        return
    raise FetchError(
        f"{part} {problem}: refusing to write through it (remove it, or download elsewhere)"
    )


def _download(fetch: _Fetch, part: Path, connections: int) -> bytes:
    """Fetch every chunk into `part` while hashing; returns the raw commitment.

    On any failure `part` is removed.
    """
    progress = fetch.progress
    fd = _create_part(part)
    complete = False
    try:
        os.ftruncate(fd, fetch.size)
        workers = [
            threading.Thread(target=_worker, args=(fetch, fd), daemon=True)
            for _ in range(min(connections, len(progress.chunks)))
        ]
        workers.append(threading.Thread(target=_flush, args=(fd, fetch.size, progress)))
        workers.append(threading.Thread(target=_watchdog, args=(fetch,), daemon=True))
        for worker in workers:
            worker.start()
        try:
            commitment = _hash_prefix(fd, fetch.size, progress)
        finally:
            progress.stop()
            for worker in workers:
                worker.join()
        if progress.failed is not None:  # the flushing failed after the hashing was done
            raise progress.failed
        os.fsync(fd)  # little is left to write by now: _flush kept up
        complete = True
        return commitment
    finally:
        os.close(fd)
        if not complete:
            part.unlink(missing_ok=True)


def _watchdog(fetch: _Fetch) -> None:
    """End the download when one read has taken longer than the stall timeout, naming its
    range; the blocked read is woken by shutting its socket down."""
    progress = fetch.progress
    step = min(1.0, fetch.stall_timeout / 4)
    with progress.cond:
        while not progress.over:
            now = time.monotonic()
            for read in progress.reads.values():
                if now - read.since >= fetch.stall_timeout:
                    progress.failed = progress.failed or FetchError(
                        f"GET {fetch.url} bytes {read.first}-{read.last}: stalled, less than "
                        f"{min(READ_SIZE, read.last + 1 - read.first)} bytes in "
                        f"{fetch.stall_timeout:g}s (--stall-timeout)"
                    )
                    read.conn.abort()
                    progress.cond.notify_all()
            progress.cond.wait(step)


def _flush(fd: int, size: int, progress: _Progress) -> None:
    """Write the file to disk as its prefix grows, so that the fsync before the rename does not
    start a whole piece's writeback at the end; this thread mostly waits for the disk."""
    flushed = 0
    try:
        while flushed < size and not progress.over:
            flushed = progress.wait_prefix(min(flushed + FLUSH_STEP, size) - 1)
            os.fdatasync(fd)
    except OSError as exc:
        progress.fail(exc)  # a write error is reported once per file: the final fsync may not
    except BaseException:
        return  # a download thread's failure: the hashing threads report it


def _hash_prefix(fd: int, size: int, progress: _Progress) -> bytes:
    """commP of the file's bytes, hashed as they arrive: HASH_THREADS threads (this one and
    helpers) take the piece's segments in order, each following its segment's written part.

    One thread alone hashes slower than the downloads write on loopback; segments (aligned
    subtrees) let the hashing use both cores. The file is mapped, so the hashers read the page
    cache in place instead of copying it out.
    """
    count = segment_count(size, SEGMENT)
    results: list[tuple[bytes, int] | None] = [None] * count
    claim = iter(range(count))
    lock = threading.Lock()
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as mapped:
        view = memoryview(mapped)

        def hash_segments() -> None:
            while True:
                with lock:
                    index = next(claim, None)
                if index is None:
                    return
                start = index * SEGMENT
                calc = _hash_span(view, start, min(start + SEGMENT, size), progress)
                results[index] = segment_result(calc)

        try:
            helpers = [
                threading.Thread(target=_catching, args=(hash_segments, progress), daemon=True)
                for _ in range(min(HASH_THREADS, count) - 1)
            ]
            for helper in helpers:
                helper.start()
            try:
                hash_segments()
            except BaseException as exc:
                progress.fail(exc)  # wakes the helpers, so that they can be joined
                raise
            finally:
                for helper in helpers:
                    helper.join()
        finally:
            view.release()
    if progress.failed is not None:
        raise progress.failed
    try:
        return join_segments([result for result in results if result is not None], SEGMENT)
    except CommPError as exc:
        raise FetchError(str(exc)) from None


def _hash_span(view: memoryview, start: int, end: int, progress: _Progress) -> CommP:
    """A CommP of the bytes from `start` to `end`, fed as they get written."""
    calc = CommP()
    done = start
    while done < end:
        ready = min(end, progress.wait_written(done))
        while done < ready:
            step = min(HASH_STEP, ready - done)
            calc.update(view[done : done + step])
            done += step
    return calc


def _catching(body: Callable[[], None], progress: _Progress) -> None:
    """Run `body` in a helper thread; its failure stops the download and reaches the caller."""
    try:
        body()
    except BaseException as exc:
        progress.fail(exc)


def _worker(fetch: _Fetch, fd: int) -> None:
    conn = _Connection(fetch.origin)
    buffer = memoryview(bytearray(min(READ_SIZE, fetch.progress.chunks[0].end)))
    try:
        while (chunk := fetch.progress.take()) is not None:
            _fetch_chunk(fetch, conn, buffer, fd, chunk)
    except BaseException as exc:
        fetch.progress.fail(exc)
    finally:
        conn.close()


def _fetch_chunk(
    fetch: _Fetch, conn: _Connection, buffer: memoryview, fd: int, chunk: _Chunk
) -> None:
    """Fetch what is missing of one chunk, retrying a dropped transfer from where it stopped."""
    progress = fetch.progress
    failures = 0
    delay = BACKOFF_FIRST
    while chunk.written < chunk.end:
        if progress.over:
            return
        before = chunk.written
        try:
            _fetch_rest(fetch, conn, buffer, fd, chunk)
        except _Retryable as exc:
            conn.close()
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


def _fetch_rest(
    fetch: _Fetch, conn: _Connection, buffer: memoryview, fd: int, chunk: _Chunk
) -> None:
    """GET the unwritten rest of `chunk` into the file, in READ_SIZE pieces."""
    first, last = chunk.written, chunk.end - 1
    headers = {"Range": f"bytes={first}-{last}"}
    if fetch.etag:
        headers["If-Range"] = fetch.etag
    reply = conn.send("GET", fetch.target, headers)
    expected = _check_reply(fetch, reply, first, last)
    position = first
    reads = fetch.progress.reads
    me = threading.get_ident()
    while position < chunk.end:
        want = min(len(buffer), chunk.end - position)
        with fetch.progress.cond:
            reads[me] = _Read(time.monotonic(), conn, position, last)
        try:
            got = _read_into(reply, buffer[:want])
        finally:
            with fetch.progress.cond:
                reads.pop(me, None)
        if fetch.progress.over:
            conn.close()
            return
        if not got:
            raise _Retryable(f"the transfer ended at byte {position} of {expected}")
        _write_all(fd, buffer[:got], position)
        position += got
        fetch.progress.advance(chunk, got)
        if fetch.progress.over:
            conn.close()  # the rest of this reply will not be read
            return
    if _read_into(reply, buffer[:1]):
        conn.close()
        raise FetchError(f"GET {fetch.url}: the server sent more than the range {expected}")


def _check_reply(fetch: _Fetch, reply: http.client.HTTPResponse, first: int, last: int) -> str:
    """The expected Content-Range when the reply is the asked range; raises otherwise."""
    url = fetch.url
    if reply.status >= 500 or reply.status == 429:
        raise _Retryable(f"GET {url}: {reply.status} {reply.reason}")
    if reply.status != 206:
        raise FetchError(
            f"GET {url} bytes {first}-{last}: {reply.status} "
            f"{_reason(fetch.origin, fetch.target, reply)}"
            + (" (the piece changed on the server)" if reply.status == 200 else "")
        )
    expected = f"bytes {first}-{last}/{fetch.size}"
    if reply.headers.get("content-range") != expected:
        raise FetchError(
            f"GET {url}: asked for {expected}, got Content-Range "
            f"{reply.headers.get('content-range')!r}"
        )
    if reply.length is not None and reply.length != last + 1 - first:
        raise FetchError(f"GET {url}: Content-Length {reply.length} for the range {expected}")
    return expected


def _read_into(reply: http.client.HTTPResponse, view: memoryview) -> int:
    """Bytes received into `view` (fewer only at the end of the body); _Retryable on a network
    failure."""
    try:
        return reply.readinto(view)
    except (OSError, http.client.HTTPException) as exc:
        raise _Retryable(_describe(exc)) from None


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data = data[n:]
        offset += n


def _verify(
    piece_cid_text: str,
    expected: PieceRef,
    recorded: tuple[int | None, int | None],
    commitment: bytes,
    part: Path,
    output: Path,
) -> tuple[int, str]:
    """(piece size, what the length was checked against) when the bytes match the piece CID;
    else FILE.bad and FetchError.

    A v2 CID gives the payload length and the piece size: the commitment is lifted to that size.
    For a v1 CID the commitment is first compared at its natural piece size; a piece padded to a
    larger minimum size (padding not in the file) matches once lifted to the size the provider's
    metadata records (`recorded`: its pieceSize and fileSize).
    """
    size = part.stat().st_size
    natural = _natural_piece_size(size)
    if expected.payload_size is not None and expected.piece_size is not None:
        if size == expected.payload_size and expected.piece_size >= natural:
            lifted = pad_commp(commitment, natural, expected.piece_size)
            if piece_cid(lifted) == expected.v1:
                return expected.piece_size, "v2"
        _refuse(part, output, piece_cid_text, commitment, natural)
    # The recorded fileSize was compared with the HEAD before any byte came (fetch_piece), and
    # the download is exactly that long: here it only says what the length was checked against.
    recorded_piece, recorded_file = recorded
    check = "metadata" if recorded_file is not None else ""
    if piece_cid(commitment) == expected.v1:
        return natural, check
    if recorded_piece is not None and recorded_piece > natural:
        if piece_cid(pad_commp(commitment, natural, recorded_piece)) == expected.v1:
            return recorded_piece, check
    _refuse(part, output, piece_cid_text, commitment, natural)


def _keep_bad(part: Path, output: Path) -> Path:
    bad = output.with_name(output.name + ".bad")
    os.replace(part, bad)
    return bad


def _refuse(
    part: Path, output: Path, piece_cid_text: str, commitment: bytes, natural: int
) -> NoReturn:
    bad = _keep_bad(part, output)
    got = cid_to_str(piece_cid(commitment))
    raise FetchError(
        f"the downloaded bytes have piece CID {got} (piece size {natural}), not "
        f"{piece_cid_text}: kept as {bad} for inspection"
    )


def _natural_piece_size(size: int) -> int:
    expanded = (size + 126) // 127 * 128
    return 1 << (expanded - 1).bit_length()


def _recorded_sizes(origin: _Origin, piece_cid_text: str) -> tuple[int | None, int | None]:
    """(pieceSize, fileSize) from GET /piece/metadata/{cid}; None for what the server does not
    say (another kind of provider may not have the endpoint)."""
    conn = _Connection(origin)
    try:
        reply = conn.send("GET", f"{origin.prefix}/piece/metadata/{piece_cid_text}?limit=1")
        if reply.status != 200:
            return None, None
        body = json.loads(reply.read(MAX_METADATA))
        piece_size, file_size = body.get("pieceSize"), body.get("fileSize")
    except (_Retryable, OSError, http.client.HTTPException, ValueError, AttributeError):
        return None, None
    finally:
        conn.close()
    good_piece = (
        isinstance(piece_size, int) and piece_size > 0 and not piece_size & (piece_size - 1)
    )
    good_file = isinstance(file_size, int) and not isinstance(file_size, bool) and file_size >= 0
    return (piece_size if good_piece else None), (file_size if good_file else None)
