"""Byte sizes as Singularity parses them (go-humanize ParseBytes) and as people read them.

One deliberate difference: a size must come to a whole number of bytes. "1.5KiB" (1536 bytes)
is fine; "1.5" or "0.3KiB" (307.2 bytes) is refused, where go-humanize would silently truncate.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "p": 10**15,
    "pb": 10**15,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
    "pi": 2**50,
    "pib": 2**50,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


class SizeError(ValueError):
    """A size string that cannot be parsed."""


def parse_size(text: str | int) -> int:
    """Parse "31.5GiB", "1MiB", "2000000", "1.5 GB" into bytes (decimal k/m/g, binary ki/mi/gi)."""
    if isinstance(text, int):
        if text < 0:
            raise SizeError(f"size must not be negative, got {text}")
        return text
    match = _SIZE.match(text)
    if match is None:
        raise SizeError(f'invalid size "{text}": use a number with an optional unit, e.g. "1MiB"')
    unit = match.group(2).lower()
    if unit not in _UNITS:
        raise SizeError(f'invalid size "{text}": unknown unit "{match.group(2)}"')
    # Exact arithmetic: a float would turn "0.1GB" into 100000000.00000001 bytes.
    value = Fraction(match.group(1)) * _UNITS[unit]
    if value.denominator != 1:
        raise SizeError(
            f'invalid size "{text}": {float(value)!r} bytes is not a whole number of bytes'
        )
    return int(value)


def size_unit(text: str | int) -> tuple[str, int]:
    """The unit a size was typed in, as typed, and its bytes: "64MiB" → ("MiB", 1048576);
    a plain number (or an int) → ("", 1)."""
    match = _SIZE.match(text) if isinstance(text, str) else None
    if match is None or match.group(2).lower() not in _UNITS:
        return "", 1
    return match.group(2), _UNITS[match.group(2).lower()]


def in_unit(n: int, unit: str, unit_bytes: int) -> str:
    """`n` bytes written exactly in `unit`: 66584575, "MiB" → "63.49999904632568359375MiB".

    Exact because every unit is a product of 2s and 5s, so the decimal expansion ends.
    """
    value = Fraction(n, unit_bytes)
    whole, rest = divmod(value.numerator, value.denominator)
    digits = ""
    while rest:
        rest *= 10
        digit, rest = divmod(rest, value.denominator)
        digits += str(digit)
    return f"{whole}{'.' + digits if digits else ''}{unit}"


def format_size(n: int) -> str:
    """Human form with binary units: 1048576 -> "1 MiB", 1500 -> "1.5 KiB"."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.4g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def next_power_of_two(n: int) -> int:
    """Smallest power of two >= n; 1 for n <= 1 (Singularity util.NextPowerOfTwo)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, ..."""
    return n > 0 and n & (n - 1) == 0
