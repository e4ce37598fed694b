from __future__ import annotations

import pytest

from dataset_worker.sizes import SizeError, is_power_of_two, next_power_of_two, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("31.5GiB", 33_822_867_456),
        ("1MiB", 1 << 20),
        ("2000000", 2_000_000),
        ("1kb", 1000),
        ("1 GB", 10**9),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1XB", "-1"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(SizeError, match="invalid size"):
        parse_size(text)


def test_powers_of_two() -> None:
    assert next_power_of_two(0) == 1
    assert next_power_of_two(2_000_000) == 1 << 21
    assert next_power_of_two(1 << 20) == 1 << 20
    assert is_power_of_two(1 << 35) and not is_power_of_two(3) and not is_power_of_two(0)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1.5KiB", 1536), ("0.5KB", 500), ("1.5 GB", 1_500_000_000), ("0.1GB", 100_000_000)],
)
def test_fractions_that_make_whole_bytes_are_exact(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(
    ("text", "shown"), [("1.5", "1.5"), ("0.3KiB", "307.2"), ("1.0000001MB", "1000000.1")]
)
def test_fractional_bytes_are_refused(text: str, shown: str) -> None:
    # go-humanize would truncate ("1.5" → 1 byte); a silent change of a size is refused instead.
    with pytest.raises(SizeError, match=rf'^invalid size "{text}": .* not a whole number of bytes'):
        parse_size(text)
