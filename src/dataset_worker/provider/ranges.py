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
    """The ranges asked for, or None when the whole representation is to be sent.

    None for: no header, a unit other than bytes, a syntax error, more than MAX_RANGES ranges
    (a server may ignore those). Ranges that start past the end are dropped; if none is left,
    RangeNotSatisfiable. Ranges are kept in the order asked, overlaps included.
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
            suffix = int(last)
            if suffix > 0 and size > 0:
                ranges.append(ByteRange(max(size - suffix, 0), size - 1))
            continue
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None  # an invalid range-spec makes the whole header invalid
        if start < size:
            ranges.append(ByteRange(start, min(end, size - 1)))
    if not ranges:
        raise RangeNotSatisfiable(f"no range of {header!r} overlaps the {size} bytes")
    return ranges


def http_date(moment: datetime) -> str:
    """An IMF-fixdate (`Tue, 02 Jan 2024 03:04:05 GMT`), to the second; naive means UTC."""
    return format_datetime(_utc(moment).replace(microsecond=0), usegmt=True)


def parse_http_date(text: str) -> datetime | None:
    """A header date as an aware UTC datetime, or None if it is not a date."""
    try:
        moment = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return _utc(moment)


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
