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
