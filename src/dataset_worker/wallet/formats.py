"""The key formats `wallet import` reads and `wallet export` writes.

- Lotus `wallet export`: the hex of a KeyInfo JSON object, {"Type": "secp256k1" | "delegated",
  "PrivateKey": "<base64 of the 32-byte key>"};
- a raw secp256k1 private key, 64 hex digits: an f1/t1 key;
- an Ethereum private key, 0x and 64 hex digits: a delegated (f410/t410) key.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from dataset_worker.wallet.keys import KINDS, PRIVATE_KEY_SIZE, KeyKind

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
FORMATS_HELP = (
    "a Lotus `wallet export` line (hex of a KeyInfo JSON), a raw secp256k1 key (64 hex digits) "
    "or an Ethereum key (0x and 64 hex digits)"
)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A private key read from text, and the kind of address it stands for."""

    kind: KeyKind
    private_key: bytes

    def __repr__(self) -> str:  # never print key material, even in a traceback
        return f"ParsedKey(kind={self.kind!r}, private_key=<hidden>)"


def parse_key_text(text: str) -> ParsedKey:
    """The key in `text` (one of the three formats); ValueError says which rule failed, never
    echoing the text."""
    body = text.strip()
    if not body:
        raise ValueError(f"no key given: expected {FORMATS_HELP}")
    if body.startswith(("0x", "0X")):
        if not _HEX64.fullmatch(body[2:]):
            raise ValueError("an Ethereum private key is 0x followed by 64 hex digits")
        return ParsedKey("delegated", bytes.fromhex(body[2:]))
    if _HEX64.fullmatch(body):
        return ParsedKey("secp256k1", bytes.fromhex(body))
    if _HEX.fullmatch(body):
        return _lotus(bytes.fromhex(body))
    raise ValueError(f"unrecognised key: expected {FORMATS_HELP}")


def _lotus(raw: bytes) -> ParsedKey:
    rule = 'a Lotus export is the hex of {"Type": "secp256k1", "PrivateKey": "<base64>"}'
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"not a Lotus key export (the hex is not JSON): {rule}") from None
    if not isinstance(info, dict) or not isinstance(info.get("Type"), str):
        raise ValueError(f"not a Lotus key export (no Type): {rule}")
    kind = info["Type"]
    if kind == "bls":
        raise ValueError("BLS keys are not supported: import a secp256k1 or delegated key")
    if kind not in KINDS:
        raise ValueError(f"unsupported key type {kind[:40]!r}: expected one of {list(KINDS)}")
    encoded = info.get("PrivateKey")
    try:
        key = base64.b64decode(encoded if isinstance(encoded, str) else "", validate=True)
    except binascii.Error:
        raise ValueError(f"not a Lotus key export (PrivateKey is not base64): {rule}") from None
    if len(key) != PRIVATE_KEY_SIZE:
        raise ValueError(f"a {kind} private key is {PRIVATE_KEY_SIZE} bytes, got {len(key)}")
    return ParsedKey(kind, key)  # kind: checked against KINDS above


def lotus_export(kind: KeyKind, private_key: bytes) -> str:
    """The Lotus `wallet export` form: hex of the KeyInfo JSON."""
    info = {"Type": kind, "PrivateKey": base64.b64encode(private_key).decode("ascii")}
    return json.dumps(info, separators=(",", ":")).encode("utf-8").hex()
