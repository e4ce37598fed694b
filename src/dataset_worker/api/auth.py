"""Admin authentication: where the admin token comes from, and which paths need it.

The token comes from DATASET_WORKER_ADMIN_TOKEN, or from `<state dir>/admin-token`, which is
generated (mode 0600) on first start. Everything under /api/ and /metrics needs it; /healthz, the
web page's static files and the OpenAPI document/docs (no data in them) do not. The token's rules
and the constant-time check are the HTTP edge's (`httpedge/auth.py`), shared with the content
provider.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from dataset_worker.config import ENV_ADMIN_TOKEN
from dataset_worker.httpedge.auth import TokenError, check_token
from dataset_worker.logs import log_event
from dataset_worker.private import private_dir

log = logging.getLogger(__name__)

TOKEN_FILE = "admin-token"


class AdminTokenError(TokenError):
    """A configured token that cannot be used (see `httpedge.auth.check_token`), or an empty
    token file."""


@dataclass(frozen=True)
class AdminToken:
    """The token and where it came from: "env", "file", or "generated" (just now)."""

    value: str
    source: str

    def __repr__(self) -> str:  # never print the secret by accident
        return f"AdminToken(source={self.source!r})"


def token_path(state_dir: Path) -> Path:
    """Where a generated token is kept."""
    return state_dir / TOKEN_FILE


def configured_token(state_dir: Path) -> AdminToken | None:
    """The token from the environment or the token file, without generating one.

    Raises AdminTokenError for a token that breaks the rules of `httpedge.auth.check_token`.
    """
    from_env = os.environ.get(ENV_ADMIN_TOKEN, "").strip()
    if from_env:
        _check_rules(from_env, ENV_ADMIN_TOKEN)
        return AdminToken(from_env, "env")
    path = token_path(state_dir)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not value:
        return None
    _check_rules(value, str(path))
    _tighten_mode(path)
    return AdminToken(value, "file")


def _check_rules(value: str, where: str) -> None:
    try:
        check_token(value, where, what="admin token")
    except TokenError as exc:
        raise AdminTokenError(str(exc)) from None


def resolve_admin_token(state_dir: Path) -> AdminToken:
    """The configured token, or a new one written to the state dir (mode 0600)."""
    existing = configured_token(state_dir)
    if existing is not None:
        return existing
    private_dir(state_dir)
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(token_path(state_dir), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another server process generated it first (or left it empty): use theirs.
        again = configured_token(state_dir)
        if again is None:
            raise AdminTokenError(
                f"{token_path(state_dir)} is empty: delete it or set {ENV_ADMIN_TOKEN}"
            ) from None
        return again
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    log_event(log, "auth.token_generated", path=str(token_path(state_dir)))
    return AdminToken(value, "generated")


def _tighten_mode(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        log_event(log, "auth.token_file_mode_fixed", logging.WARNING, path=str(path))


def is_protected(path: str) -> bool:
    """Paths that need the admin token."""
    return path.startswith("/api/") or path == "/api" or path == "/metrics"
