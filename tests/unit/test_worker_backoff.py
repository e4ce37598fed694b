from __future__ import annotations

from dataset_worker.worker.runtime.thread import Backoff, next_interval


def test_next_interval_doubles_and_caps() -> None:
    assert next_interval(5, 160) == 10
    assert next_interval(80, 160) == 160
    assert next_interval(160, 160) == 160
    assert next_interval(100, 160) == 160


def test_default_sequence_is_singularitys() -> None:
    backoff = Backoff(5, 160)
    assert [backoff.advance() for _ in range(8)] == [5, 10, 20, 40, 80, 160, 160, 160]


def test_reset_returns_to_the_minimum() -> None:
    backoff = Backoff(1, 8)
    assert [backoff.advance() for _ in range(3)] == [1, 2, 4]
    backoff.reset()
    assert [backoff.advance() for _ in range(5)] == [1, 2, 4, 8, 8]


def test_min_equal_to_max_never_changes() -> None:
    backoff = Backoff(3, 3)
    assert {backoff.advance() for _ in range(4)} == {3}
