"""SFTP storage settings without the SSH client: an `sftp://` path and its config, checked and
parsed. Kept apart from `sftp` (paramiko) so that what only validates a storage (the admin
server's storage routes, the CLI) does not load paramiko.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from dataset_worker.storage.base import StorageError

_SETTINGS = ("key_file", "known_hosts", "connect_timeout", "max_attempts")
_SECRETS = frozenset({"password", "passphrase", "private_key", "secret"})


@dataclass(frozen=True, slots=True)
class SftpConfig:
    """Where and how to connect (hashable: connections are shared per config)."""

    host: str
    port: int
    username: str
    root: str
    key_file: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 15.0
    max_attempts: int = 5

    @property
    def server(self) -> str:
        """`sftp://user@host:port` for messages."""
        return f"sftp://{self.username}@{self.host}:{self.port}"


def parse_sftp(path: str, config: Mapping[str, Any] | None) -> SftpConfig:
    """Validate an `sftp://` path and its config; StorageError names the key and the rule."""
    values = dict(config or {})
    for key in values:
        if key.lower() in _SECRETS:
            raise StorageError(
                f'SFTP config key "{key}" holds a secret: use SSH keys (ssh-agent, ~/.ssh or '
                "key_file)"
            )
        if key not in _SETTINGS:
            raise StorageError(
                f'unknown SFTP config key "{key}" (known keys: {", ".join(_SETTINGS)})'
            )
    parts = urlsplit(path)
    if ":" in parts.netloc.rpartition("@")[0]:
        # sftp://user:password@host: never stored, shown or echoed (this message quotes nothing).
        raise StorageError(
            "SFTP path must not carry a password (sftp://user:password@host): use SSH keys "
            "(ssh-agent, ~/.ssh or key_file)"
        )
    if parts.scheme != "sftp" or not parts.hostname:
        raise StorageError(f'SFTP path "{path}" must look like sftp://[user@]host[:port]/path')
    root = unquote(parts.path) or "/"
    if any(p in (".", "..") for p in root.split("/")):
        raise StorageError(f'SFTP path "{path}" must not contain "." or ".." segments')
    try:
        port = parts.port or 22
    except ValueError:
        raise StorageError(f'SFTP path "{path}" has an invalid port') from None
    return SftpConfig(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username or "") or os.environ.get("USER", "") or "root",
        root=root.rstrip("/") or "/",
        key_file=_opt_path(values, "key_file"),
        known_hosts=_opt_path(values, "known_hosts"),
        connect_timeout=float(values.get("connect_timeout", 15.0)),
        max_attempts=max(1, int(values.get("max_attempts", 5))),
    )


def _opt_path(values: Mapping[str, Any], key: str) -> str | None:
    value = values.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not os.path.isabs(os.path.expanduser(value)):
        raise StorageError(f'SFTP config "{key}" must be an absolute file path')
    return os.path.expanduser(value)
