"""Security headers: what a browser may do with the replies of the admin server and gateway.

The admin page loads only its own module scripts and stylesheets, so its policy allows nothing
else, and no other site may frame it. Files served by the `/ipfs/` gateway are anyone's bytes:
`sandbox` makes a browser treat an HTML file there as a page of no origin, without scripts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Header = tuple[bytes, bytes]
PAGE_POLICY = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
# /docs and /redoc start Swagger UI and ReDoc with an inline script (and ReDoc with a blob:
# worker), which `default-src 'self'` would block; they keep the rest of the policy.
DOCS_POLICY = "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
SANDBOX_POLICY = "sandbox"
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})

COMMON_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
GATEWAY_FILE_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": SANDBOX_POLICY,
    "X-Content-Type-Options": "nosniff",
}


def page_policy(path: str) -> str:
    """The admin server's policy for a path: the page's, or the docs pages' looser one."""
    return DOCS_POLICY if path in DOCS_PATHS else PAGE_POLICY


class SecurityHeadersMiddleware:
    """Add the content security policy `policy_of(path)` (none when it returns None) and
    `COMMON_HEADERS` to every HTTP reply, unless the reply set them itself."""

    def __init__(self, app: ASGIApp, *, policy_of: Callable[[str], str | None]) -> None:
        self.app = app
        self.policy_of = policy_of
        # The encoded headers per policy: a handful of policies, and every request needs one.
        self._added: dict[str | None, tuple[list[Header], frozenset[bytes]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added, names = self._headers(self.policy_of(scope["path"]))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                # ASGI header names are lower case bytes; a reply's own value wins.
                if any(name in names for name, _ in headers):
                    present = {name for name, _ in headers}
                    extra = [item for item in added if item[0] not in present]
                else:
                    extra = added
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers(self, policy: str | None) -> tuple[list[Header], frozenset[bytes]]:
        known = self._added.get(policy)
        if known is None:
            extra = dict(COMMON_HEADERS)
            if policy is not None:
                extra["Content-Security-Policy"] = policy
            added = [(name.lower().encode(), value.encode()) for name, value in extra.items()]
            known = self._added[policy] = (added, frozenset(name for name, _ in added))
        return known
