"""Admin authentication: one bearer token, compared in constant time, never logged.

The token comes from DATASET_WORKER_ADMIN_TOKEN, or from `<state dir>/admin-token`, which is
generated (mode 0600) on first start. Everything under /api/ and /metrics needs it; /healthz, the
web page's static files and the OpenAPI document/docs (no data in them) do not.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from dataset_worker.api.errors import error_response
from dataset_worker.config import ENV_ADMIN_TOKEN
from dataset_worker.logs import log_event
from dataset_worker.private import private_dir

log = logging.getLogger(__name__)

TOKEN_FILE = "admin-token"
# A shorter secret could be guessed over the network; a generated one has 43 characters.
MIN_TOKEN_LENGTH = 16


class AdminTokenError(Exception):
    """A configured token that cannot be used (too short, or an empty token file)."""


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

    Raises AdminTokenError for a token shorter than MIN_TOKEN_LENGTH characters.
    """
    from_env = os.environ.get(ENV_ADMIN_TOKEN, "").strip()
    if from_env:
        _check_length(from_env, ENV_ADMIN_TOKEN)
        return AdminToken(from_env, "env")
    path = token_path(state_dir)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not value:
        return None
    _check_length(value, str(path))
    _tighten_mode(path)
    return AdminToken(value, "file")


def _check_length(value: str, where: str) -> None:
    if len(value) < MIN_TOKEN_LENGTH:
        raise AdminTokenError(
            f"the admin token in {where} is too short: {len(value)} characters, at least "
            f"{MIN_TOKEN_LENGTH} are needed (a short token can be guessed); use a long random "
            "one, e.g. the output of `openssl rand -base64 32`"
        )


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


def token_matches(header: bytes | None, token: str) -> bool:
    """True when an Authorization header value carries `token` as a Bearer credential."""
    if not header:
        return False
    scheme, _, credential = header.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return secrets.compare_digest(credential.strip(), token.encode())


def is_protected(path: str) -> bool:
    """Paths that need the admin token."""
    return path.startswith("/api/") or path == "/api" or path == "/metrics"


class BearerAuthMiddleware:
    """Refuse protected requests without the right token, before any other work is done.

    A middleware rather than a dependency so the 401 comes first, even for a request whose body
    would not parse, and so no route can forget it.
    """

    def __init__(
        self, app: ASGIApp, *, token: str, protected: Callable[[str], bool] = is_protected
    ) -> None:
        self.app = app
        self.token = token
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.protected(scope["path"]):
            header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if not token_matches(header, self.token):
                message = (
                    "Missing admin token: send the header Authorization: Bearer <token>"
                    if header is None
                    else "Invalid admin token"
                )
                response = error_response(401, message)
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
