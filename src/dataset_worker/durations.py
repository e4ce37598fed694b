"""Go-style durations (`time.ParseDuration` / `Duration.String`), as Singularity's flags use them."""

from __future__ import annotations

import re
from fractions import Fraction

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# Go's time.Duration is an int64 of nanoseconds: about 2562047h47m16.85s either way.
MAX_DURATION_NS = 2**63 - 1
MIN_DURATION_NS = -(2**63)
MAX_DURATION_TEXT = "2562047h47m16.854775807s"
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A string that Go's time.ParseDuration would reject."""


def parse_duration(text: str) -> float:
    """Parse a Go duration such as "1m30s", "1.5h" or "250ms" into seconds.

    Like Go, a sign is accepted, "0" needs no unit, there is no "d" unit, and a duration
    beyond Go's range (an int64 of nanoseconds, about 2562047h) is refused.
    """
    s = text.strip()
    if not s:
        raise DurationError('invalid duration "": empty string')
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0.0
    pos, total_ns = 0, Fraction(0)
    while pos < len(s):
        match = _PART.match(s, pos)
        if match is None:
            raise DurationError(
                f'invalid duration "{text}": use a number and a unit (ns, us, ms, s, m, h), '
                'e.g. "5s" or "2m40s"'
            )
        # Exact arithmetic, so the range check below is exact at its edges too.
        total_ns += Fraction(match.group(1)) * _UNITS_NS[match.group(2)]
        pos = match.end()
    if not s:
        raise DurationError(f'invalid duration "{text}"')
    signed_ns = sign * total_ns
    if not MIN_DURATION_NS <= signed_ns <= MAX_DURATION_NS:
        raise DurationError(
            f'invalid duration "{text}": out of range, Go durations go up to '
            f"{MAX_DURATION_TEXT} (2^63-1 nanoseconds)"
        )
    return float(signed_ns / 1_000_000_000)


def format_duration(seconds: float) -> str:
    """Format seconds like Go's Duration.String: "2m30s", "1h0m5s", "1.5s", "250ms", "0s"."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _trim(rest / 1e9)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"
