from __future__ import annotations

import pytest

from dataset_worker.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5),
        ("2m40s", 160),
        ("1.5h", 5400),
        ("250ms", 0.25),
        ("0", 0),
        ("-1s", -1),
        ("1h1m1s", 3661),
    ],
)
def test_parse_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1d", "s", "5 s", "abc", "1m30"])
def test_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(DurationError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(150, "2m30s"), (160, "2m40s"), (0, "0s"), (1.5, "1.5s"), (3605, "1h0m5s"), (0.25, "250ms")],
)
def test_format_like_go(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "text",
    ["100000000h", "2562048h", "2562047h47m16.854775808s", "-2562047h47m16.854775809s", "1e3h"],
)
def test_durations_beyond_gos_int64_nanoseconds_are_refused(text: str) -> None:
    with pytest.raises(DurationError, match=rf'^invalid duration "{text}"'):
        parse_duration(text)


def test_the_edges_of_gos_range_are_accepted_exactly() -> None:
    # Go's time.Duration is int64 nanoseconds: these two are its largest and smallest values.
    assert parse_duration("2562047h47m16.854775807s") == pytest.approx(9223372036.854775807)
    assert parse_duration("-2562047h47m16.854775808s") == pytest.approx(-9223372036.854775808)
    with pytest.raises(DurationError, match=r"out of range.*up to 2562047h47m16\.854775807s"):
        parse_duration("100000000h")
