"""The poll interval of a worker thread (docs/architecture.md#worker-thread-loop)."""

from __future__ import annotations


def next_interval(current: float, maximum: float) -> float:
    """The sleep after `current`: doubled, capped at `maximum` (5, 10, 20, … 160, 160 …)."""
    return min(current * 2, maximum)


class Backoff:
    """Interval that doubles while idle or failing and resets after a success or a pause."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.current = minimum

    def reset(self) -> None:
        """Back to the minimum (after a successful or a paused job)."""
        self.current = self.minimum

    def advance(self) -> float:
        """Return the interval to sleep now, and double it for next time."""
        interval = self.current
        self.current = next_interval(self.current, self.maximum)
        return interval
