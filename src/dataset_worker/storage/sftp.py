"""SFTP servers as source and output storages (paramiko).

`sftp://[user@]host[:port]/absolute/path`. Authentication uses SSH keys only: the ssh-agent,
the default keys of ~/.ssh, or `key_file` in the storage config (a path, not a secret); the
server's host key must be in `known_hosts` (default ~/.ssh/known_hosts), never accepted blindly.

Listing matches the local scan (breadth first, entries in byte order of their names; symbolic
links and special files are reported and skipped). SFTP gives mtimes in whole seconds, so the
change check compares size and whole seconds. Outputs are written to a hidden temporary file
and renamed into place (POSIX rename, which replaces), like local folders. Connections are
shared per server and user, and opened again after a failure.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, cast

import paramiko

from dataset_worker.storage.base import (
    RESCAN_HINT,
    ListingErrorHandler,
    SourceChangedError,
    SourceEntry,
    SpaceInfo,
    StorageError,
    iso_time,
)
from dataset_worker.storage.sftpconfig import SftpConfig, parse_sftp

TEMP_PREFIX = ".dw-"
TEMP_SUFFIX = ".car.part"
_ZEROS = bytes(1 << 20)
_RETRY_BASE = 0.1


class _Connection:
    """One SSH transport + SFTP session, opened on demand and again after a failure."""

    def __init__(self, config: SftpConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def sftp(self) -> paramiko.SFTPClient:
        """The live SFTP session (connecting first if needed)."""
        with self._lock:
            transport = self._client.get_transport() if self._client is not None else None
            if self._sftp is None or transport is None or not transport.is_active():
                self._close_locked()
                self._connect_locked()
            assert self._sftp is not None
            return self._sftp

    def _connect_locked(self) -> None:
        config = self.config
        client = paramiko.SSHClient()
        try:
            known = config.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
            if os.path.exists(known):
                client.load_host_keys(known)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect(
                config.host,
                port=config.port,
                username=config.username,
                key_filename=config.key_file,
                timeout=config.connect_timeout,
                banner_timeout=config.connect_timeout,
                auth_timeout=config.connect_timeout,
                allow_agent=config.key_file is None,
                look_for_keys=config.key_file is None,
            )
            self._sftp = client.open_sftp()
            self._client = client
        except BaseException:
            client.close()
            raise

    def _close_locked(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._sftp = self._client = None

    def close(self) -> None:
        """Close the session (the next call reconnects)."""
        with self._lock:
            self._close_locked()


_connections: dict[SftpConfig, _Connection] = {}
_connections_lock = threading.Lock()


def _connection(config: SftpConfig) -> _Connection:
    key = SftpConfig(config.host, config.port, config.username, "/", config.key_file,
                     config.known_hosts, config.connect_timeout, config.max_attempts)  # fmt: skip
    with _connections_lock:
        conn = _connections.get(key)
        if conn is None:
            conn = _connections[key] = _Connection(key)
        return conn


def close_all() -> None:
    """Close every shared connection (tests and shutdown)."""
    with _connections_lock:
        conns = list(_connections.values())
        _connections.clear()
    for conn in conns:
        conn.close()


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (paramiko.SSHException, EOFError, ConnectionError, TimeoutError)):
        return True
    return isinstance(exc, OSError) and exc.errno is None and "closed" in str(exc).lower()


class _SftpBase:
    def __init__(self, config: SftpConfig) -> None:
        self.config = config
        self.conn = _connection(config)

    def describe(self) -> str:
        """`sftp://user@host:port/path`."""
        return self.config.server + self.config.root

    def _abs(self, path: str) -> str:
        if not path:
            return self.config.root
        if (
            path.startswith("/")
            or "\x00" in path
            or any(p in ("", ".", "..") for p in path.split("/"))
        ):
            raise StorageError(f'invalid relative path "{path}" (it must stay inside the storage)')
        return f"{self.config.root.rstrip('/')}/{path}"

    def call(self, action: Any, what: str) -> Any:
        """`action(sftp)`, reconnecting and retrying after connection failures."""
        for attempt in range(self.config.max_attempts):
            try:
                return action(self.conn.sftp())
            except Exception as exc:
                if not _transient(exc) or attempt + 1 >= self.config.max_attempts:
                    if _transient(exc):
                        raise StorageError(f"{what} on {self.describe()} failed: {exc}") from exc
                    raise
                self.conn.close()
                time.sleep(min(5.0, _RETRY_BASE * 2**attempt))
        raise AssertionError("unreachable")


class SftpSource(_SftpBase):
    """A folder on an SFTP server read as a source storage."""

    def walk(self, on_error: ListingErrorHandler) -> Iterator[SourceEntry]:
        """Breadth first, entries of each directory in byte order of their names."""
        queue: deque[str] = deque([""])
        while queue:
            prefix = queue.popleft()
            try:
                items = self.call(lambda s, p=prefix: s.listdir_attr(self._abs(p)), "listing")
            except OSError as exc:
                if not prefix:
                    raise StorageError(f"cannot list {self.describe()}: {exc}") from exc
                on_error(prefix, exc)
                continue
            for item in sorted(items, key=lambda a: a.filename.encode("utf-8", "surrogateescape")):
                path = f"{prefix}/{item.filename}" if prefix else item.filename
                entry = _entry(item, path, on_error)
                if entry is None:
                    continue
                if entry.is_dir:
                    queue.append(path)
                yield entry

    def open_range(
        self, path: str, offset: int, *, size: int, mtime_ns: int, hash: str = ""
    ) -> _SftpRangeStream:
        """Open `path` at `offset` after checking size and mtime (whole seconds)."""
        return _SftpRangeStream(self, path, offset, size, mtime_ns)

    def remove(self, path: str) -> None:
        """Delete a source file (delete-after-export)."""
        self.call(lambda s: s.remove(self._abs(path)), "remove")


def _entry(
    item: paramiko.SFTPAttributes, path: str, on_error: ListingErrorHandler
) -> SourceEntry | None:
    mode = item.st_mode or 0
    if stat.S_ISDIR(mode):
        return SourceEntry(path, True)
    if stat.S_ISREG(mode):
        return SourceEntry(path, False, int(item.st_size or 0), int(item.st_mtime or 0) * 10**9)
    kind = "symbolic link" if stat.S_ISLNK(mode) else "special file"
    on_error(path, StorageError(f"{path} is a {kind}; skipped"))
    return None


class _SftpRangeStream:
    """A file read from an offset; after a connection failure it reopens where it stopped."""

    def __init__(
        self, source: SftpSource, path: str, offset: int, size: int, mtime_ns: int
    ) -> None:
        self._source = source
        self._path = path
        self._position = offset
        self._size = size
        self._mtime_ns = mtime_ns
        self._file: paramiko.SFTPFile | None = None
        self._file = self._open()

    def _open(self) -> paramiko.SFTPFile:
        full = self._source._abs(self._path)

        def action(sftp: paramiko.SFTPClient) -> paramiko.SFTPFile:
            try:
                handle = sftp.open(full, "rb")
            except FileNotFoundError:
                raise SourceChangedError(
                    f"source changed: {self._source.describe()}/{self._path} no longer exists; "
                    f"{RESCAN_HINT}"
                ) from None
            try:
                self._check(handle.stat())
                handle.seek(self._position)
            except BaseException:
                handle.close()
                raise
            return handle

        return cast(paramiko.SFTPFile, self._source.call(action, f"opening {self._path}"))

    def _check(self, attrs: paramiko.SFTPAttributes) -> None:
        changes = []
        if self._size >= 0 and attrs.st_size != self._size:
            changes.append(f"size {self._size} -> {attrs.st_size}")
        if self._mtime_ns >= 0 and int(attrs.st_mtime or 0) != self._mtime_ns // 10**9:
            before = iso_time(self._mtime_ns, whole_seconds=True)
            after = iso_time(int(attrs.st_mtime or 0) * 10**9, whole_seconds=True)
            changes.append(f"modified {before} -> {after}")
        if changes:
            raise SourceChangedError(
                f"source changed: {self._source.describe()}/{self._path} ({', '.join(changes)}); "
                f"{RESCAN_HINT}"
            )

    def readinto(self, buffer: memoryview, /) -> int:
        """Fill `buffer` from the current position; 0 at the end of the file."""
        for attempt in range(self._source.config.max_attempts):
            try:
                if self._file is None:
                    self._file = self._open()
                data = self._read(len(buffer))
                buffer[: len(data)] = data
                self._position += len(data)
                return len(data)
            except Exception as exc:
                if not _transient(exc) or attempt + 1 >= self._source.config.max_attempts:
                    raise
                self.close()
                self._source.conn.close()
                time.sleep(min(5.0, _RETRY_BASE * 2**attempt))
        raise AssertionError("unreachable")

    def _read(self, want: int) -> bytes:
        assert self._file is not None
        if self._size < 0:
            return bytes(self._file.read(want))
        want = min(want, self._size - self._position)
        if want <= 0:
            return b""
        if self._file.sftp.sock.closed:
            # readv's helper thread would fail on the dead channel; reconnect first instead.
            raise ConnectionResetError("the SFTP connection was closed")
        # readv pipelines the 32 KiB SFTP requests of one buffer (no round trip per request)
        # and, unlike prefetch(), never reads further ahead than the buffer: memory stays flat.
        return b"".join(self._file.readv([(self._position, want)]))

    def close(self) -> None:
        """Close the remote file."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None


class SftpTempOutput:
    """A CAR being written to a hidden temporary file; `publish` renames it into place."""

    def __init__(self, output: SftpOutput, tag: str) -> None:
        self._output = output
        self.name = f"{TEMP_PREFIX}{tag}-{uuid.uuid4().hex}{TEMP_SUFFIX}"
        self.path = output._abs(self.name)
        handle = output.call(lambda s: s.open(self.path, "wbx"), "creating a temporary file")
        handle.set_pipelined(True)  # writes do not wait for each acknowledgement
        self._file: paramiko.SFTPFile | None = handle
        self._size = 0
        self._published = False

    @property
    def stream(self) -> BinaryIO:
        """The writable remote file."""
        if self._file is None:
            raise StorageError(f"{self.path} is already closed")
        return cast(BinaryIO, _CountingWriter(self))

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def write(self, data: Any) -> int:
        """Append `data`."""
        if self._file is None:
            raise StorageError(f"{self.path} is already closed")
        view = memoryview(data).cast("B")
        self._file.write(bytes(view))
        self._size += view.nbytes
        return view.nbytes

    def read_back(self) -> BinaryIO:
        """A reader over what was written (flushed first)."""
        if self._file is not None:
            self._file.flush()
        return cast(BinaryIO, self._output.call(lambda s: s.open(self.path, "rb"), "reading"))

    def pad_to(self, size: int) -> None:
        """Append zero bytes up to `size`."""
        while self._size < size:
            self.write(_ZEROS[: min(len(_ZEROS), size - self._size)])

    def publish(self, name: str) -> str:
        """Close (waiting for every write) and rename to `name`, replacing it; returns `name`."""
        if "/" in name or name in ("", ".", ".."):
            raise StorageError(f'invalid output file name "{name}"')
        if self._file is None:
            raise StorageError(f"{self.path} is already closed")
        self._file.close()  # raises if any pipelined write failed
        self._file = None
        target = self._output._abs(name)
        self._output.call(lambda s: s.posix_rename(self.path, target), "publishing")
        self._published = True
        return name

    def discard(self) -> None:
        """Close and delete the temporary file unless it was published."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        if not self._published:
            with contextlib.suppress(Exception):
                self._output.call(lambda s: s.remove(self.path), "removing a temporary file")


class _CountingWriter:
    """The `stream` of an SftpTempOutput: writes go through it so sizes are counted."""

    def __init__(self, temp: SftpTempOutput) -> None:
        self._temp = temp

    def write(self, data: Any) -> int:
        return self._temp.write(data)

    def flush(self) -> None:
        return None


class SftpOutput(_SftpBase):
    """A folder on an SFTP server that receives CAR files."""

    def space(self) -> SpaceInfo:
        """Free and total bytes from the server's statvfs extension, when it has one."""
        try:
            transport = self.conn.sftp().get_channel().get_transport()
            found = statvfs(transport, self.config.root, timeout=self.config.connect_timeout)
        except Exception:
            found = None
        return SpaceInfo(*found) if found is not None else SpaceInfo(None, None)

    def create_temp(self, tag: str) -> SftpTempOutput:
        """A new hidden temporary file `.dw-<tag>-<uuid>.car.part`."""
        return SftpTempOutput(self, tag)

    def remove_temps(self, tag: str) -> int:
        """Delete leftover temporary files of `tag`; returns how many."""
        prefix = f"{TEMP_PREFIX}{tag}-"
        names = self.call(lambda s: s.listdir(self.config.root), "listing")
        removed = 0
        for name in names:
            if name.startswith(prefix) and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    self.call(lambda s, n=name: s.remove(self._abs(n)), "removing")
                    removed += 1
        return removed

    def exists(self, path: str) -> int | None:
        """Size of the file at `path`, or None."""
        try:
            attrs = self.call(lambda s: s.stat(self._abs(path)), "stat")
        except FileNotFoundError:
            return None
        return int(attrs.st_size or 0)

    def remove(self, path: str) -> None:
        """Delete the file at `path` if present."""
        with contextlib.suppress(FileNotFoundError):
            self.call(lambda s: s.remove(self._abs(path)), "remove")


# SFTP version 3 packet types (draft-ietf-secsh-filexfer-02) and OpenSSH's statvfs extension.
_FXP_INIT, _FXP_VERSION, _FXP_EXTENDED, _FXP_EXTENDED_REPLY = 1, 2, 200, 201
_STATVFS = "statvfs@openssh.com"
_MAX_PACKET = 1 << 18  # a VERSION or statvfs reply is a few hundred bytes


def statvfs(transport: paramiko.Transport, path: str, *, timeout: float) -> tuple[int, int] | None:
    """(available, total) bytes of the file system holding `path`, from the server's
    statvfs@openssh.com extension; None when the server does not answer it.

    paramiko's SFTPClient has no statvfs, so the request is sent on a short-lived SFTP channel of
    its own, with paramiko's public API only (a session channel, the sftp subsystem, Message).
    """
    channel = transport.open_session(timeout=timeout)
    try:
        channel.settimeout(timeout)
        channel.invoke_subsystem("sftp")
        _send_packet(channel, _FXP_INIT, (3).to_bytes(4, "big"))
        kind, _ = _receive_packet(channel)
        if kind != _FXP_VERSION:
            return None
        request = paramiko.Message()
        request.add_int(1)  # request id
        request.add_string(_STATVFS)
        request.add_string(path)
        _send_packet(channel, _FXP_EXTENDED, request.asbytes())
        kind, payload = _receive_packet(channel)
        if kind != _FXP_EXTENDED_REPLY:
            return None  # a STATUS reply: the extension is not supported
        reply = paramiko.Message(payload)
        reply.get_int()  # request id
        bsize, frsize, blocks, _bfree, bavail = (reply.get_int64() for _ in range(5))
        unit = frsize or bsize
        return bavail * unit, blocks * unit
    finally:
        channel.close()


def _send_packet(channel: paramiko.Channel, kind: int, payload: bytes) -> None:
    channel.sendall((len(payload) + 1).to_bytes(4, "big") + bytes([kind]) + payload)


def _receive_packet(channel: paramiko.Channel) -> tuple[int, bytes]:
    length = int.from_bytes(_receive_exactly(channel, 4), "big")
    if not 1 <= length <= _MAX_PACKET:
        raise StorageError(f"SFTP server sent a packet of {length} bytes")
    packet = _receive_exactly(channel, length)
    return packet[0], packet[1:]


def _receive_exactly(channel: paramiko.Channel, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        if not chunk:
            raise StorageError("SFTP server closed the channel")
        data += chunk
    return data


def open_sftp_source(path: str, config: Mapping[str, Any] | None) -> SftpSource:
    """The source for an `sftp://` storage path."""
    return SftpSource(parse_sftp(path, config))


def open_sftp_output(path: str, config: Mapping[str, Any] | None) -> SftpOutput:
    """The output for an `sftp://` storage path."""
    return SftpOutput(parse_sftp(path, config))
