"""ULIDs (https://github.com/ulid/spec): the identifier of an mk20 deal.

48 bits of milliseconds since the Unix epoch, then 80 random bits, as 26 characters of
Crockford's base32. Curio parses the identifier with oklog/ulid, which accepts exactly this.
"""

from __future__ import annotations

import os
import re
import time

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_PATTERN = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def new_ulid(now_ms: int | None = None, entropy: bytes | None = None) -> str:
    """A new ULID string; `now_ms` and `entropy` (10 bytes) are for tests."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"ULID time must fit 48 bits, got {ms}")
    rand = os.urandom(10) if entropy is None else entropy
    if len(rand) != 10:
        raise ValueError(f"ULID entropy must be 10 bytes, got {len(rand)}")
    value = (ms << 80) | int.from_bytes(rand, "big")
    return "".join(ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def is_ulid(text: str) -> bool:
    """True for a canonical (upper-case) ULID string."""
    return ULID_PATTERN.fullmatch(text) is not None


def ulid_time_ms(text: str) -> int:
    """The millisecond timestamp a ULID carries."""
    value = 0
    for char in text:
        value = value * 32 + ALPHABET.index(char)
    return value >> 80
