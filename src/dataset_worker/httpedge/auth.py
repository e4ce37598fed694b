"""The bearer token of both servers: its rules, checked in one place, and a constant-time check.

Where a token comes from stays with each server (the admin token from the environment or the
state dir, the content provider's from `--token-file`); what makes it acceptable is here.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from dataset_worker.httpedge.errors import error_response

# A shorter secret could be guessed over the network; a generated one has 43 characters.
MIN_TOKEN_LENGTH = 16


class TokenError(ValueError):
    """A configured token that cannot be used: too short, or not one word of printable text."""


def check_token(value: str, where: str, *, what: str = "token") -> str:
    """`value` if it is an acceptable token; TokenError naming `where` (a file, a variable) and
    the rule otherwise."""
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise TokenError(
            f"the {what} in {where} must be one word of printable characters (no spaces)"
        )
    if len(value) < MIN_TOKEN_LENGTH:
        raise TokenError(
            f"the {what} in {where} is too short: {len(value)} characters, at least "
            f"{MIN_TOKEN_LENGTH} are needed (a short token can be guessed); use a long random "
            "one, e.g. the output of `openssl rand -base64 32`"
        )
    return value


def token_matches(header: bytes | None, token: str) -> bool:
    """True when an Authorization header value carries `token` as a Bearer credential; the
    comparison takes the same time wherever the credential differs."""
    if not header:
        return False
    scheme, _, credential = header.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return secrets.compare_digest(credential.strip(), token.encode())


class BearerAuthMiddleware:
    """Refuse requests to `protected` paths without the right token (401), before any other work.

    A middleware rather than a dependency so the 401 comes first, even for a request whose body
    would not parse, and so no route can forget it. `name` is how replies call the token
    ("admin token", "token"). The token must follow the rules of `check_token`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        protected: Callable[[str], bool],
        name: str = "token",
    ) -> None:
        self.app = app
        self.token = check_token(token, "the server's configuration", what=name)
        self.protected = protected
        self.missing = f"Missing {name}: send the header Authorization: Bearer <token>"
        self.invalid = f"Invalid {name}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.protected(scope["path"]):
            header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if not token_matches(header, self.token):
                response = error_response(401, self.missing if header is None else self.invalid)
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
