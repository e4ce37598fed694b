"""HTTP range and conditional request rules (RFC 9110 sections 13 and 14) for one representation.

Pure functions over header strings: the Range header becomes a list of byte ranges (or None to
send the whole representation), and If-None-Match / If-Modified-Since / If-Range are evaluated
against the piece's ETag and Last-Modified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

# More ranges than this in one request is the pattern RFC 9110 14.2 calls a likely
# denial-of-service; like Apache's MaxRanges, the header is then ignored (the whole piece).
MAX_RANGES = 64
_SPEC = re.compile(r"^([0-9]*)-([0-9]*)$", re.ASCII)
# A byte position longer than this is past the end of any representation; parsing it whole would
# cost quadratic time, and Python refuses int() of more than 4300 digits (a 500 before).
_MAX_DIGITS = 20
_HUGE = 1 << 80


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes `start` to `end` inclusive, as in a Content-Range header."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        """The Content-Range header value for this range of a `size`-byte representation."""
        return f"bytes {self.start}-{self.end}/{size}"


class RangeNotSatisfiable(Exception):
    """A valid Range header none of whose ranges overlaps the representation (416)."""


def parse_range(header: str | None, size: int) -> list[ByteRange] | None:
    """The ranges to send, or None when the whole representation is to be sent.

    None for: no header, a unit other than bytes, a syntax error, more than MAX_RANGES ranges,
    or ranges that together ask for more bytes than the representation holds (overlaps: RFC 9110
    14.2 lets a server ignore such a set, which would otherwise send the same bytes many times).
    Ranges that start past the end are dropped; if none is left, RangeNotSatisfiable. The rest
    are sorted and overlapping or adjacent ones merged (RFC 9110 14.2 allows coalescing), so a
    reply never holds a byte twice.
    """
    if header is None:
        return None
    unit, sep, spec_list = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = [spec.strip() for spec in spec_list.split(",")]
    specs = [spec for spec in specs if spec]  # the list rule allows empty elements
    if not specs or len(specs) > MAX_RANGES:
        return None
    ranges: list[ByteRange] = []
    for spec in specs:
        match = _SPEC.match(spec)
        if match is None:
            return None
        first, last = match.groups()
        if not first and not last:
            return None
        if not first:  # suffix range: the last N bytes
            suffix = _position(last)
            if suffix > 0 and size > 0:
                ranges.append(ByteRange(max(size - suffix, 0), size - 1))
            continue
        start = _position(first)
        end = _position(last) if last else size - 1
        if last and end < start:
            return None  # an invalid range-spec makes the whole header invalid
        if start < size:
            ranges.append(ByteRange(start, min(end, size - 1)))
    if not ranges:
        raise RangeNotSatisfiable(f"no range of {_shown(header)} overlaps the {size} bytes")
    if sum(r.length for r in ranges) > size:
        return None
    return coalesce(ranges)


def coalesce(ranges: list[ByteRange]) -> list[ByteRange]:
    """The same bytes as sorted, disjoint, non-adjacent ranges."""
    merged: list[ByteRange] = []
    for byte_range in sorted(ranges, key=lambda r: r.start):
        if merged and byte_range.start <= merged[-1].end + 1:
            if byte_range.end > merged[-1].end:
                merged[-1] = ByteRange(merged[-1].start, byte_range.end)
        else:
            merged.append(byte_range)
    return merged


def _position(digits: str) -> int:
    significant = digits.lstrip("0")
    return _HUGE if len(significant) > _MAX_DIGITS else int(significant or "0")


def _shown(header: str) -> str:
    """The header for a message, cut short: a reply need not echo kilobytes back."""
    return repr(header if len(header) <= 100 else header[:100] + "…")


def http_date(moment: datetime) -> str:
    """An IMF-fixdate (`Tue, 02 Jan 2024 03:04:05 GMT`), to the second; naive means UTC."""
    return format_datetime(_utc(moment).replace(microsecond=0), usegmt=True)


def parse_http_date(text: str) -> datetime | None:
    """A header date as an aware UTC datetime, or None if it is not a date."""
    try:
        return _utc(parsedate_to_datetime(text.strip()))
    except (TypeError, ValueError, IndexError, OverflowError):
        # Not a date, or one out of datetime's range (a year past 9999, a zone offset of a
        # day or more, or an offset that moves the year out of range in UTC).
        return None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _entity_tags(header: str) -> list[str]:
    """The entity-tags of an If-None-Match list, weak prefix dropped (weak comparison)."""
    tags = []
    for item in header.split(","):
        tag = item.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag:
            tags.append(tag)
    return tags


def not_modified(
    etag: str, last_modified: datetime, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """True when a GET or HEAD is to be answered 304 (If-None-Match first, as RFC 9110 13.2.2)."""
    if if_none_match is not None:
        tags = _entity_tags(if_none_match)
        return "*" in tags or etag in tags
    if if_modified_since is not None:
        since = parse_http_date(if_modified_since)
        return since is not None and _utc(last_modified).replace(microsecond=0) <= since
    return False


def if_range_allows(if_range: str | None, etag: str, last_modified: datetime) -> bool:
    """True when the Range header is to be honoured: no If-Range, or one that still matches.

    An entity tag must match strongly (a weak one never does); a date must equal Last-Modified.
    """
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag
    moment = parse_http_date(value)
    return moment is not None and moment == _utc(last_modified).replace(microsecond=0)
