"""S3-compatible buckets as source and output storages.

Listing yields exactly what `storage.local` yields for the same tree, in the same order (breadth
first, each directory's entries in byte order of their names), so CARs and CIDs do not depend
on where the files were. Each directory is listed with a `/` delimiter, one page at a time;
a small reorder buffer turns S3's key order (where "a/" sorts after "a-b") into name order, so
memory does not grow with the number of objects. A listing error fails the scan: a bucket
listing that stops half way must never look complete.

Reads are ranged GETs streamed by a helper thread into a bounded queue; a reset, timeout, 5xx
or SlowDown reopens the GET at the current offset. The object's size, ETag and mtime are checked
against the scan at every (re)open.

Outputs are written by streamed multipart upload to a temporary key, then published under their
final name by server-side copy and deletion of the temporary key.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import logging
import queue
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast

from dataset_worker.storage.base import (
    RESCAN_HINT,
    ListingErrorHandler,
    ListingFailed,
    SourceChangedError,
    SourceEntry,
    SpaceInfo,
    StorageError,
    WalkStart,
    iso_time,
)
from dataset_worker.storage.s3client import S3Api, error_code, is_transient, s3_api, status_code
from dataset_worker.storage.s3config import MIB, S3Config, S3Location, parse_s3_url
from dataset_worker.storage.s3shards import SerialLister, ShardedLister

log = logging.getLogger(__name__)

TEMP_PREFIX = ".dw-"
TEMP_SUFFIX = ".car.part"
MAX_PARTS = 10_000
COPY_LIMIT = 5 << 30  # larger objects need a multipart copy
COPY_PART_SIZE = 1 << 30
READ_CHUNK = MIB
READ_AHEAD_CHUNKS = 8  # bytes buffered ahead of the reader: at most 8 MiB per open range
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SLASH = 0x2F
_ZEROS = bytes(MIB)


def _mtime_ns(value: datetime) -> int:
    """Nanoseconds since the epoch, exactly (no float rounding)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _etag(value: object) -> str:
    return str(value or "").strip('"')


def _check_relative(path: str) -> str:
    if not path or path.startswith("/") or "\x00" in path:
        raise StorageError(f'invalid relative path "{path}" (it must stay inside the storage)')
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise StorageError(f'invalid relative path "{path}" (it must stay inside the storage)')
    return path


@dataclass(frozen=True, slots=True)
class _Listed:
    """One listing item: its name, S3 sort key (name, or name + "/" for a prefix), entry."""

    name: bytes
    key: bytes
    is_dir: bool
    path: str
    entry: SourceEntry | None  # None for a name that cannot be represented (reported, skipped)


class _NameOrder:
    """Reorders items arriving in S3 key order into byte order of their names.

    The two orders differ only when a directory name D is a proper prefix of another name N
    whose next byte sorts before "/" (e.g. D = "a", N = "a-b"): S3 lists "a-b" before "a/".
    An item is held back while such a directory could still arrive; the rest flows through.
    """

    def __init__(self) -> None:
        self._held: list[tuple[bytes, int, _Listed]] = []
        self._seq = 0

    def push(self, item: _Listed) -> Iterator[_Listed]:
        """Add `item` (keys must not go backwards) and release what can no longer move."""
        self._seq += 1
        heapq.heappush(self._held, (item.name, self._seq, item))
        while self._held and not self._blocked(self._held[0][0], item.key):
            yield heapq.heappop(self._held)[2]

    def flush(self) -> Iterator[_Listed]:
        """Everything still held, in name order (the listing ended)."""
        while self._held:
            yield heapq.heappop(self._held)[2]

    @staticmethod
    def _blocked(name: bytes, last_key: bytes) -> bool:
        for k in range(1, len(name)):
            if name[k] < _SLASH and name[:k] + b"/" > last_key:
                return True
        return False


class S3Source:
    """A bucket prefix read as a source storage."""

    def __init__(
        self, api: S3Api, location: S3Location, page_size: int = 1000, shards: int = 1
    ) -> None:
        self.api = api
        self.location = location
        self.page_size = page_size
        self.shards = shards  # directories listed ahead in parallel (storage.s3shards)

    def describe(self) -> str:
        """`s3://bucket/prefix`."""
        return self.location.url()

    def walk(self, on_error: ListingErrorHandler) -> Iterator[SourceEntry]:
        """Breadth first, each directory's entries in byte order of their names.

        Names S3 allows but a folder cannot hold (empty segments, "." or "..") are reported to
        `on_error` and skipped, as is a file that has the name of a folder next to it; a listing
        request that keeps failing raises StorageError.
        """
        return self.walk_from(on_error, WalkStart(("",), ""))

    def walk_from(self, on_error: ListingErrorHandler, start: WalkStart) -> Iterator[SourceEntry]:
        """`walk`, resumed: the listing of `start.pending[0]` begins after `start.after` (S3's
        StartAfter), so what was recorded before a crash is listed again at most once."""
        lister: SerialLister | ShardedLister = (
            ShardedLister(self._sorted_children, self.shards, self.page_size)
            if self.shards > 1
            else SerialLister(self._sorted_children)
        )
        try:
            yield from self._walk(lister, on_error, start)
        finally:
            lister.close()

    def _walk(
        self, lister: SerialLister | ShardedLister, on_error: ListingErrorHandler, start: WalkStart
    ) -> Iterator[SourceEntry]:
        pending: deque[str] = deque(start.pending)
        # Folders already recorded and waiting (a resumed walk) are not yielded or queued again.
        queued = set(start.pending)
        for index, directory in enumerate(start.pending):
            lister.announce(directory, start.after if index == 0 else "")
        while pending:
            directory = pending.popleft()
            held: _Listed | None = None  # a file, until we know no folder has its name
            for item in lister.children(directory):
                if held is not None:
                    if item.name == held.name:
                        on_error(
                            held.path,
                            StorageError("a folder has the same name; the file is skipped"),
                        )
                    else:
                        yield from self._accept(held, on_error)
                    held = None
                if not item.is_dir:
                    held = item
                    continue
                if item.entry is not None:
                    if item.entry.path in queued:
                        # Resumed: a recorded folder listed again (its key "a/" sorts after
                        # the resume name "a!"); it is already recorded and waiting.
                        continue
                    queued.add(item.entry.path)
                    pending.append(item.entry.path)
                    lister.announce(item.entry.path, "")
                yield from self._accept(item, on_error)
            if held is not None:
                yield from self._accept(held, on_error)

    @staticmethod
    def _accept(item: _Listed, on_error: ListingErrorHandler) -> Iterator[SourceEntry]:
        if item.entry is None:
            on_error(item.path, StorageError(f'"{item.path}" is not a usable name; skipped'))
        else:
            yield item.entry

    @staticmethod
    def _join(directory: str, name: str) -> str:
        return f"{directory}/{name}" if directory else name

    def _sorted_children(self, directory: str, after: str = "") -> Iterator[_Listed]:
        order = _NameOrder()
        for item in self._children(directory, after):
            yield from order.push(item)
        yield from order.flush()

    def _children(self, directory: str, after: str = "") -> Iterator[_Listed]:
        """The direct children of `directory`, in S3 key order, one page at a time; with `after`,
        only keys above `<directory>/<after>`: every name at or before `after` in name order has
        a key at or below it ("a-b" < "a/" but also "a-b" > "a")."""
        prefix = self.location.root + (directory + "/" if directory else "")
        token: str | None = None
        last_key = b""
        while True:
            params: dict[str, Any] = {
                "Bucket": self.location.bucket,
                "Prefix": prefix,
                "Delimiter": "/",
                "MaxKeys": self.page_size,
            }
            if token:
                params["ContinuationToken"] = token
            elif after:
                params["StartAfter"] = prefix + after
            page = self._list_page(params, prefix)
            for item in self._page_items(page, prefix, directory):
                if item.key < last_key:
                    raise StorageError(
                        f"listing of {self.location.url(prefix)} is not in key order "
                        f"({item.key!r} after {last_key!r}); the server is not usable as a source"
                    )
                last_key = item.key
                yield item
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def _list_page(self, params: dict[str, Any], prefix: str) -> dict[str, Any]:
        try:
            return cast(dict[str, Any], self.api.call("list_objects_v2", **params))
        except Exception as exc:
            raise ListingFailed(
                f"listing {self.location.url(prefix)} failed: {exc}",
                "the scan stops here so an incomplete listing is never taken for the whole source",
            ) from exc

    def _page_items(self, page: dict[str, Any], prefix: str, directory: str) -> list[_Listed]:
        items: list[_Listed] = []
        for obj in page.get("Contents", ()):
            name = str(obj["Key"])[len(prefix) :]
            if not name:
                continue  # the marker object of the directory itself ("dir/")
            path = self._join(directory, name)
            entry = SourceEntry(
                path,
                False,
                int(obj.get("Size", 0)),
                _mtime_ns(obj["LastModified"]),
                hash=_etag(obj.get("ETag")),
            )
            usable = name not in (".", "..")
            items.append(
                _Listed(name.encode(), name.encode(), False, path, entry if usable else None)
            )
        for common in page.get("CommonPrefixes", ()):
            name = str(common["Prefix"])[len(prefix) :].removesuffix("/")
            path = self._join(directory, name)
            usable = name not in ("", ".", "..")
            entry_dir = SourceEntry(path, True) if usable else None
            items.append(_Listed(name.encode(), name.encode() + b"/", True, path, entry_dir))
        items.sort(key=lambda item: item.key)
        return items

    def open_range(
        self, path: str, offset: int, *, size: int, mtime_ns: int, hash: str = ""
    ) -> S3RangeStream | io.BytesIO:
        """Stream `path` from `offset` after checking size, mtime and ETag against the scan."""
        key = self.location.root + _check_relative(path)
        expected = _Identity(size, mtime_ns, hash)
        if size >= 0 and offset >= size:
            # Nothing to read (a zero-byte object, or the end): a HEAD checks it, no GET.
            self._head_check(key, expected)
            return io.BytesIO(b"")
        return S3RangeStream(self, key, offset, expected)

    def _head_check(self, key: str, expected: _Identity) -> None:
        try:
            head = self.api.call("head_object", Bucket=self.location.bucket, Key=key)
        except Exception as exc:
            raise self._open_error(key, exc) from exc
        expected.check(
            self.location.url(key),
            int(head.get("ContentLength", 0)),
            head.get("LastModified"),
            _etag(head.get("ETag")),
        )

    def _open_error(self, key: str, exc: Exception) -> Exception:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound") or status_code(exc) == 404:
            return SourceChangedError(
                f"source changed: {self.location.url(key)} no longer exists; {RESCAN_HINT}"
            )
        if status_code(exc) == 412 or error_code(exc) == "PreconditionFailed":
            return SourceChangedError(f"source changed: {self.location.url(key)}; {RESCAN_HINT}")
        return StorageError(f"reading {self.location.url(key)} failed: {exc}")

    def get_from(self, key: str, offset: int, expected: _Identity) -> tuple[Any, int]:
        """GET `key` from `offset` to its end, checked against `expected`; (body, end)."""
        end = f"{expected.size - 1}" if expected.size >= 0 else ""
        params = {"Bucket": self.location.bucket, "Key": key, "Range": f"bytes={offset}-{end}"}
        try:
            reply = self.api.client.get_object(**params)
        except Exception as exc:
            if is_transient(exc):
                raise
            raise self._open_error(key, exc) from exc
        body = reply["Body"]
        try:
            total = _total_size(reply)
            expected.check(
                self.location.url(key), total, reply.get("LastModified"), _etag(reply.get("ETag"))
            )
        except BaseException:
            body.close()
            raise
        return body, total

    def remove(self, path: str) -> None:
        """Delete a source object (delete-after-export)."""
        key = self.location.root + _check_relative(path)
        self.api.call("delete_object", Bucket=self.location.bucket, Key=key)


def _total_size(reply: dict[str, Any]) -> int:
    content_range = str(reply.get("ContentRange") or "")
    if "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    return int(reply.get("ContentLength", 0))


@dataclass(frozen=True, slots=True)
class _Identity:
    """What the scan recorded about an object: size (-1 unknown), mtime in ns, ETag ("" none)."""

    size: int
    mtime_ns: int
    etag: str

    def check(self, url: str, size: int, modified: datetime | None, etag: str) -> None:
        """Raise SourceChangedError naming the object unless it is the scanned version."""
        changes = []
        if self.size >= 0 and size != self.size:
            changes.append(f"size {self.size} -> {size}")
        if self.etag and etag and etag != self.etag:
            changes.append(f"ETag {self.etag} -> {etag}")
        if modified is not None and self.mtime_ns >= 0:  # -1: not checked (a re-read CAR)
            # HTTP dates have whole seconds, truncated; listings carry milliseconds or seconds
            # rounded either way (rclone rounds up). Within a second is the same version: the
            # ETag and size are the exact checks.
            seconds = _mtime_ns(modified) // 1_000_000_000
            if abs(seconds - self.mtime_ns // 1_000_000_000) > 1:
                changes.append(
                    f"modified {iso_time(self.mtime_ns)} -> {iso_time(_mtime_ns(modified))}"
                )
        if changes:
            raise SourceChangedError(f"source changed: {url} ({', '.join(changes)}); {RESCAN_HINT}")


class _Stop(Exception):
    pass


class S3RangeStream:
    """An object streamed from an offset by a helper thread, at most READ_AHEAD_CHUNKS ahead.

    A transient failure (reset, timeout, truncated body, 5xx, SlowDown) reopens the GET at the
    first byte not yet queued, after a bounded backoff; the version is checked again at each
    reopen. The attempts count restarts whenever data arrives, so a long read survives many
    separate hiccups but not an endless outage.
    """

    def __init__(self, source: S3Source, key: str, offset: int, expected: _Identity) -> None:
        self._source = source
        self._key = key
        self._expected = expected
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(READ_AHEAD_CHUNKS)
        self._stop = threading.Event()
        self._body: Any = None
        self._body_lock = threading.Lock()
        self._current = memoryview(b"")
        self._done = False
        # The first GET runs here, so a changed or missing object fails the open itself.
        self._first = source.api.retry(lambda: source.get_from(key, offset, expected), "get_object")
        self._thread: threading.Thread | None = None
        if 0 <= expected.size - offset <= READ_CHUNK:
            # At most one chunk: read it now without a helper thread (an unbounded queue, as
            # a server may send it in many small pieces; the total is still one chunk).
            self._queue = queue.Queue()
            self._pump(offset)
        else:
            self._thread = threading.Thread(
                target=self._pump, args=(offset,), name="s3-read-ahead", daemon=True
            )
            self._thread.start()

    def _set_body(self, body: Any) -> None:
        with self._body_lock:
            self._body = body
            if self._stop.is_set():
                body.close()

    def _pump(self, position: int) -> None:
        body: Any
        body, end = self._first
        self._set_body(body)
        delays = self._source.api.backoff.delays()
        try:
            while not self._stop.is_set():
                try:
                    if body is None:
                        body, end = self._source.get_from(self._key, position, self._expected)
                        self._set_body(body)
                    if position >= end:
                        break
                    chunk = body.read(min(READ_CHUNK, end - position))
                    if not chunk:
                        raise ConnectionResetError("the response ended before the object did")
                    self._put(chunk)
                    position += len(chunk)
                    delays = self._source.api.backoff.delays()
                except _Stop:
                    return
                except Exception as exc:
                    if not is_transient(exc) or self._stop.is_set():
                        raise
                    delay = next(delays, None)
                    if delay is None:
                        raise StorageError(
                            f"reading {self._source.location.url(self._key)} failed at byte "
                            f"{position} after {self._source.api.backoff.attempts} attempts: {exc}"
                        ) from exc
                    log.debug("s3 read of %s retried at %d: %s", self._key, position, exc)
                    with contextlib.suppress(Exception):
                        body.close()
                    body = None
                    if self._stop.wait(delay):
                        return
            self._put(None)
        except _Stop:
            return
        except BaseException as exc:
            with contextlib.suppress(_Stop):
                self._put(exc)
        finally:
            if body is not None:
                with contextlib.suppress(Exception):
                    body.close()

    def _put(self, item: bytes | BaseException | None) -> None:
        while True:
            if self._stop.is_set():
                raise _Stop
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def readinto(self, buffer: memoryview, /) -> int:
        """Copy the next bytes into `buffer`; 0 at the end of the object."""
        while not self._current:
            if self._done:
                return 0
            item = self._queue.get()
            if item is None:
                self._done = True
                return 0
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._current = memoryview(item)
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative)."""
        out = bytearray()
        chunk = memoryview(bytearray(READ_CHUNK))
        while size < 0 or len(out) < size:
            want = READ_CHUNK if size < 0 else min(READ_CHUNK, size - len(out))
            got = self.readinto(chunk[:want])
            if not got:
                break
            out += chunk[:got]
        return bytes(out)

    def close(self) -> None:
        """Stop the helper thread and drop the connection."""
        self._stop.set()
        with self._body_lock:
            if self._body is not None:
                with contextlib.suppress(Exception):
                    self._body.close()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        if self._thread is not None:
            # A read blocked on a silent connection ends at the read timeout; the daemon thread
            # then exits by itself, so do not wait for it here.
            self._thread.join(timeout=1)


class _MultipartStream(io.RawIOBase):
    """A write-only stream that uploads fixed-size parts as they fill.

    One part uploads in a helper thread while the next one fills, so memory stays at about two
    part buffers and nothing is copied to local disk.
    """

    def __init__(self, api: S3Api, bucket: str, key: str, upload_id: str, part_size: int) -> None:
        super().__init__()
        self._api = api
        self._bucket = bucket
        self._key = key
        self.upload_id = upload_id
        self._part_size = part_size
        self._buffer = bytearray(part_size)  # filled up to _filled, then sent
        self._filled = 0
        self._parts: list[dict[str, Any]] = []
        self._uploading: threading.Thread | None = None
        self._error: BaseException | None = None
        self.size = 0

    def writable(self) -> bool:
        """Always writable until closed."""
        return True

    def write(self, data: Any) -> int:
        """Buffer `data`; full parts are uploaded."""
        view = memoryview(data).cast("B")
        taken = 0
        while taken < view.nbytes:
            # One copy into the part buffer, one into the bytes the upload sends: writes come
            # in small pieces (CAR sections), so this loop is what every byte goes through.
            step = min(view.nbytes - taken, self._part_size - self._filled)
            self._buffer[self._filled : self._filled + step] = view[taken : taken + step]
            self._filled += step
            taken += step
            if self._filled == self._part_size:
                self._send(bytes(self._buffer))
                self._filled = 0
        self.size += view.nbytes
        return view.nbytes

    def _send(self, part: bytes) -> None:
        self._wait()
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(
                f"s3://{self._bucket}/{self._key} needs more than {MAX_PARTS} parts of "
                f"{self._part_size} bytes; raise the storage's part_size"
            )
        self._parts.append({"PartNumber": number})
        self._uploading = threading.Thread(
            target=self._upload, args=(number, part), name="s3-part-upload", daemon=True
        )
        self._uploading.start()

    def _upload(self, number: int, part: bytes) -> None:
        try:
            reply = self._api.call(
                "upload_part",
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=part,
            )
            self._parts[number - 1]["ETag"] = reply["ETag"]
        except BaseException as exc:
            self._error = exc

    def _wait(self) -> None:
        if self._uploading is not None:
            self._uploading.join()
            self._uploading = None
        if self._error is not None:
            raise StorageError(
                f"uploading s3://{self._bucket}/{self._key} failed: {self._error}"
            ) from self._error

    def finish(self) -> None:
        """Upload what is left and complete the multipart upload."""
        if self._filled or not self._parts:
            part = bytes(memoryview(self._buffer)[: self._filled])
            self._filled = 0
            self._send(part)
        self._wait()
        try:
            self._api.call(
                "complete_multipart_upload",
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except Exception as exc:
            # A retried complete whose first try succeeded: the object is there.
            if error_code(exc) != "NoSuchUpload" or self._object_size() != self.size:
                raise

    def _object_size(self) -> int | None:
        try:
            head = self._api.call("head_object", Bucket=self._bucket, Key=self._key)
        except Exception:
            return None
        return int(head.get("ContentLength", -1))

    def abort(self) -> None:
        """Abort the upload (its parts are freed); errors are ignored (recovery retries)."""
        with contextlib.suppress(Exception):
            self._wait()
        try:
            self._api.call(
                "abort_multipart_upload",
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self.upload_id,
            )
        except Exception as exc:
            log.warning("aborting upload of %s failed: %s", self._key, exc)


class S3TempOutput:
    """A CAR being uploaded to a temporary key; `publish` copies it to its final name."""

    def __init__(self, output: S3Output, tag: str) -> None:
        self._output = output
        self.key = f"{output.location.root}{TEMP_PREFIX}{tag}-{uuid.uuid4().hex}{TEMP_SUFFIX}"
        api, bucket = output.api, output.location.bucket
        reply = api.call("create_multipart_upload", Bucket=bucket, Key=self.key)
        self._writer: _MultipartStream | None = _MultipartStream(
            api, bucket, self.key, str(reply["UploadId"]), output.part_size
        )
        self._completed = False
        self._published = False

    @property
    def stream(self) -> BinaryIO:
        """The writable stream (parts are uploaded as they fill)."""
        if self._writer is None:
            raise StorageError(f"{self._output.location.url(self.key)} is already closed")
        return cast(BinaryIO, self._writer)

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._writer.size if self._writer is not None else 0

    def read_back(self) -> BinaryIO:
        """Not available: the object exists only once it is complete."""
        raise StorageError("an S3 upload cannot be read back before it is published")

    def pad_to(self, size: int) -> None:
        """Append zero bytes up to `size`."""
        stream = self.stream
        missing = size - self.size
        while missing > 0:
            step = min(missing, len(_ZEROS))
            stream.write(_ZEROS[:step])
            missing -= step

    def publish(self, name: str) -> str:
        """Complete the upload, copy it to `name` server-side, delete the temporary key."""
        if "/" in name or name in ("", ".", ".."):
            raise StorageError(f'invalid output file name "{name}"')
        writer = self._writer
        if writer is None:
            raise StorageError(f"{self._output.location.url(self.key)} is already closed")
        writer.finish()
        self._completed = True
        self._writer = None
        final = self._output.location.root + name
        self._output.copy(self.key, final, writer.size)
        self._published = True
        self._output.delete_key(self.key)
        return name

    def discard(self) -> None:
        """Abort the upload, or delete the temporary object; never touches a published one."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        if self._completed and not self._published:
            with contextlib.suppress(Exception):
                self._output.delete_key(self.key)
            self._completed = False


class S3Output:
    """A bucket prefix that receives CAR files."""

    def __init__(
        self,
        api: S3Api,
        location: S3Location,
        *,
        part_size: int,
        copy_limit: int = COPY_LIMIT,
        copy_part_size: int = COPY_PART_SIZE,
    ) -> None:
        self.api = api
        self.location = location
        self.part_size = part_size
        self.copy_limit = copy_limit
        self.copy_part_size = copy_part_size

    def describe(self) -> str:
        """`s3://bucket/prefix`."""
        return self.location.url()

    def space(self) -> SpaceInfo:
        """Unknown: object stores do not report free space."""
        return SpaceInfo(None, None)

    def create_temp(self, tag: str) -> S3TempOutput:
        """A new multipart upload to `.dw-<tag>-<uuid>.car.part`."""
        return S3TempOutput(self, tag)

    def remove_temps(self, tag: str) -> int:
        """Delete leftover temporary objects of `tag` and abort its incomplete uploads."""
        prefix = f"{self.location.root}{TEMP_PREFIX}{tag}-"
        bucket = self.location.bucket
        removed = 0
        for page in self._pages(
            "list_objects_v2", "ContinuationToken", Bucket=bucket, Prefix=prefix
        ):
            for obj in page.get("Contents", ()):
                if str(obj["Key"]).endswith(TEMP_SUFFIX):
                    self.delete_key(str(obj["Key"]))
                    removed += 1
        for upload in self._uploads(prefix):
            self.api.call(
                "abort_multipart_upload",
                Bucket=bucket,
                Key=upload["Key"],
                UploadId=upload["UploadId"],
            )
            removed += 1
        return removed

    def _uploads(self, prefix: str) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = []
        params: dict[str, Any] = {"Bucket": self.location.bucket, "Prefix": prefix}
        while True:
            try:
                page = self.api.call("list_multipart_uploads", **params)
            except Exception as exc:
                if error_code(exc) == "NoSuchUpload":  # rclone's answer for "none match"
                    return uploads
                raise
            uploads.extend(
                u for u in page.get("Uploads", ()) if str(u["Key"]).endswith(TEMP_SUFFIX)
            )
            if not page.get("IsTruncated"):
                return uploads
            params["KeyMarker"] = page.get("NextKeyMarker", "")
            params["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

    def _pages(self, operation: str, token_name: str, **params: Any) -> Iterator[dict[str, Any]]:
        while True:
            page = cast(dict[str, Any], self.api.call(operation, **params))
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            params[token_name] = token

    def copy(self, source_key: str, target_key: str, size: int) -> None:
        """Server-side copy; a multipart copy above the single-copy limit (5 GiB)."""
        bucket = self.location.bucket
        source = {"Bucket": bucket, "Key": source_key}
        if size <= self.copy_limit or not self._multipart_copy(source, target_key, size):
            self.api.call("copy_object", Bucket=bucket, Key=target_key, CopySource=source)
        copied = self.exists_key(target_key)
        if copied != size:
            raise StorageError(
                f"copying to {self.location.url(target_key)} gave {copied} bytes, not {size}"
            )

    def _multipart_copy(self, source: dict[str, str], target_key: str, size: int) -> bool:
        """Copy in ranges; False when the server does not implement part copies (rclone
        answers without a part ETag), so the caller falls back to one CopyObject."""
        bucket = self.location.bucket
        upload_id = str(
            self.api.call("create_multipart_upload", Bucket=bucket, Key=target_key)["UploadId"]
        )
        try:
            parts = []
            part_size = max(self.copy_part_size, -(-size // MAX_PARTS))
            for number, start in enumerate(range(0, size, part_size), start=1):
                stop = min(size, start + part_size) - 1
                reply = self.api.call(
                    "upload_part_copy",
                    Bucket=bucket,
                    Key=target_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{stop}",
                )
                etag = reply.get("CopyPartResult", {}).get("ETag")
                if not etag:
                    self._abort(target_key, upload_id)
                    return False
                parts.append({"PartNumber": number, "ETag": etag})
            self.api.call(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=target_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self._abort(target_key, upload_id)
            raise
        return True

    def _abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(Exception):
            self.api.call(
                "abort_multipart_upload", Bucket=self.location.bucket, Key=key, UploadId=upload_id
            )

    def delete_key(self, key: str) -> None:
        """Delete one key (absent keys are fine)."""
        self.api.call("delete_object", Bucket=self.location.bucket, Key=key)

    def exists(self, path: str) -> int | None:
        """Size of the object at `path`, or None."""
        return self.exists_key(self.location.root + _check_relative(path))

    def exists_key(self, key: str) -> int | None:
        """Size of the object at `key`, or None."""
        try:
            head = self.api.call("head_object", Bucket=self.location.bucket, Key=key)
        except Exception as exc:
            if status_code(exc) == 404 or error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head.get("ContentLength", 0))

    def remove(self, path: str) -> None:
        """Delete the object at `path` if present."""
        self.delete_key(self.location.root + _check_relative(path))


def open_s3_source(path: str, config: S3Config) -> S3Source:
    """The source for a `s3://bucket/prefix` storage path."""
    return S3Source(s3_api(config), parse_s3_url(path), shards=config.scan_shards)


def open_s3_output(path: str, config: S3Config) -> S3Output:
    """The output for a `s3://bucket/prefix` storage path."""
    return S3Output(s3_api(config), parse_s3_url(path), part_size=config.part_size)
