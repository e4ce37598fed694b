"""A small HTTP client for Curio's Market 2.0 routes, on the standard library's http.client.

`POST /market/mk20/deal` answers with a status code (Curio's DealCode) and a plain-text body
`Reason: <text>`; `GET /market/mk20/status/{id}` answers 200 with a DealProductStatusResponse
(`{"ddo_v1": {"status": ..., "errorMsg": ...}}`). Every request is signed (auth.py). One
keep-alive connection per client; a failed exchange closes it and the next request reconnects.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

from dataset_worker.deals.auth import Signer, curio_auth_header

API_PREFIX = "/market/mk20"
DEFAULT_TIMEOUT = 30.0
REASON_PREFIX = "Reason:"
MAX_REPLY = 1 << 20  # an answer longer than this is cut: it is only shown, never parsed whole


class TransportError(Exception):
    """No HTTP answer: connection refused or reset, or a timeout."""


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, body text, Curio's reason and the Retry-After delay if any."""

    status: int
    text: str
    retry_after: float | None = None

    @property
    def reason(self) -> str:
        """Curio's `Reason: …` text, else the body as sent (trimmed)."""
        text = self.text.strip()
        # Curio writes "Reason: " and the reason, which may be empty (an internal error).
        return text[len(REASON_PREFIX) :].strip() if text.startswith(REASON_PREFIX) else text

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not)."""
        return json.loads(self.text)


def parse_sp_url(sp_url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path prefix) of an SP's base URL; ValueError naming the rule."""
    if any(ord(c) < 33 or c == "\x7f" for c in sp_url.strip()):
        raise ValueError(f"--sp-url must not contain spaces or control characters, got {sp_url!r}")
    parts = urlsplit(sp_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f'--sp-url must be an http:// or https:// URL, got "{sp_url}"')
    if parts.query or parts.fragment:
        raise ValueError(f'--sp-url must not have a query or fragment, got "{sp_url}"')
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Mk20Client:
    """Signed requests to one SP's Market 2.0 API."""

    def __init__(self, sp_url: str, signer: Signer, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.scheme, self.host, self.port, self.prefix = parse_sp_url(sp_url)
        self.signer = signer
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def post_deal(self, body: dict[str, Any]) -> Answer:
        """POST /market/mk20/deal with the deal JSON."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        return self._send("POST", f"{self.prefix}{API_PREFIX}/deal", payload)

    def deal_status(self, identifier: str) -> Answer:
        """GET /market/mk20/status/{id}."""
        return self._send("GET", f"{self.prefix}{API_PREFIX}/status/{quote(identifier)}", None)

    def products(self) -> Answer:
        """GET /market/mk20/products."""
        return self._send("GET", f"{self.prefix}{API_PREFIX}/products", None)

    def sources(self) -> Answer:
        """GET /market/mk20/sources."""
        return self._send("GET", f"{self.prefix}{API_PREFIX}/sources", None)

    def close(self) -> None:
        """Close the kept-alive connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = (
                http.client.HTTPSConnection
                if self.scheme == "https"
                else http.client.HTTPConnection
            )
            self._conn = cls(self.host, self.port, timeout=self.timeout)
        return self._conn

    def _send(self, method: str, path: str, payload: bytes | None) -> Answer:
        headers = {"Authorization": curio_auth_header(self.signer, method, path)}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn = self._connection()
        try:
            conn.request(method, path, body=payload, headers=headers)
            reply = conn.getresponse()
            data = reply.read(MAX_REPLY)
            if reply.will_close or len(data) == MAX_REPLY:
                self.close()
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            self.close()
            what = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise TransportError(
                f"{method} {self.scheme}://{self.host}:{self.port}{path}: {what}"
            ) from exc
        return Answer(
            reply.status,
            data.decode("utf-8", errors="replace"),
            retry_after_seconds(reply.getheader("Retry-After")),
        )
