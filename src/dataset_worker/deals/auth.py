"""The `Authorization: CurioAuth …` header of Curio's Market 2.0 API.

As Curio's `market/mk20/auth.go` verifies it:

- header: `CurioAuth <key type>:<std base64 of the address bytes>:<std base64 of the signature>`;
- the signed message is sha256(address bytes ‖ METHOD ‖ escaped URL path ‖ timestamp), the four
  parts joined with no separator, the timestamp being the current UTC time truncated to the
  minute in RFC 3339 (`2025-07-15T17:00:00Z`); the server accepts the previous, current and next
  minute;
- the signature is Filecoin's `crypto.Signature.MarshalBinary()`: one type byte (1 = secp256k1)
  then the 65-byte r‖s‖v recoverable signature, which Lotus checks over blake2b-256 of the
  message (here: of the 32-byte sha256 digest above).

The signer is handed in, so nothing here sees a private key.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Protocol

AUTH_PREFIX = "CurioAuth "
SIG_TYPE_SECP256K1 = 1


class Signer(Protocol):
    """A client wallet that can sign: its address (string and bytes) and a secp256k1 signer."""

    @property
    def address(self) -> str:
        """The address string, e.g. "f1…" (Curio compares it with the deal's `client`)."""
        ...

    @property
    def address_bytes(self) -> bytes:
        """The address bytes (protocol byte then payload)."""
        ...

    def sign(self, message: bytes) -> bytes:
        """The 65-byte r‖s‖v secp256k1 signature over blake2b-256(message)."""
        ...


def minute_stamp(now: datetime) -> str:
    """`now` in UTC, truncated to the minute, as Go's time.RFC3339 prints it."""
    utc = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:00Z")


def auth_digest(address_bytes: bytes, method: str, path: str, now: datetime) -> bytes:
    """sha256 of address bytes ‖ METHOD ‖ path ‖ minute stamp: what the signature covers."""
    message = b"".join(
        (
            address_bytes,
            method.upper().encode("ascii"),
            (path or "/").encode("ascii"),
            minute_stamp(now).encode("ascii"),
        )
    )
    return hashlib.sha256(message).digest()


def curio_auth_header(signer: Signer, method: str, path: str, now: datetime | None = None) -> str:
    """The Authorization header value for one request (`path`: escaped, without the query)."""
    when = now or datetime.now(UTC)
    digest = auth_digest(signer.address_bytes, method, path, when)
    signature = signer.sign(digest)
    if len(signature) != 65:
        raise ValueError(f"a secp256k1 signature is 65 bytes, the signer gave {len(signature)}")
    wire = bytes([SIG_TYPE_SECP256K1]) + signature
    return (
        f"{AUTH_PREFIX}secp256k1:"
        f"{base64.b64encode(signer.address_bytes).decode('ascii')}:"
        f"{base64.b64encode(wire).decode('ascii')}"
    )
