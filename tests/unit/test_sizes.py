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
