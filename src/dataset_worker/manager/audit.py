"""The audit log: one JSON line per start and stop (time, action, config, result, remote address).

Appended with O_APPEND in a single write, so concurrent server processes never interleave lines.
Bounded: past `max_bytes` the file is renamed to `audit.log.1` (replacing the older one).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_BLOCK = 64 * 1024


class AuditLog:
    """Append and read audit entries in `path` (and its one rotated predecessor)."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes

    @property
    def rotated(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def append(
        self,
        action: str,
        *,
        config: dict[str, Any] | None,
        result: dict[str, Any],
        remote: str | None,
    ) -> dict[str, Any]:
        """Record one action; returns the entry written."""
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "action": action,
            "config": config,
            "result": result,
            "remote": remote,
        }
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        self._rotate_if_full()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return entry

    def read(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` entries, newest first."""
        entries: list[dict[str, Any]] = []
        for path in (self.path, self.rotated):
            for line in reversed(_last_lines(path, limit - len(entries))):
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a crash mid-write is skipped, not fatal
            if len(entries) >= limit:
                break
        return entries[:limit]

    def _rotate_if_full(self) -> None:
        try:
            if self.path.stat().st_size < self.max_bytes:
                return
        except FileNotFoundError:
            return
        try:
            os.replace(self.path, self.rotated)
        except FileNotFoundError:
            pass  # another server process rotated it first


def _last_lines(path: Path, count: int) -> list[bytes]:
    """The last `count` complete lines of `path`, oldest first, reading backwards in blocks."""
    if count <= 0:
        return []
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return []
    with handle:
        position = handle.seek(0, os.SEEK_END)
        data = b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = [line for line in data.split(b"\n") if line]
    if position > 0:
        lines = lines[1:]  # the first one may be the tail of a line we did not read whole
    return lines[-count:]
