"""Timings of deal sends and polls; each may be set in the environment (docs/deals.md#tuning)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from dataset_worker.deals import states

ENV_PREFIX = "DATASET_WORKER_DEAL_"


@dataclass(frozen=True)
class Tuning:
    """Seconds: HTTP timeout, retry backoff base and cap, status poll period, worker loop period."""

    timeout: float = 30.0
    retry_base: float = states.RETRY_BASE
    retry_cap: float = states.RETRY_CAP
    poll_interval: float = states.POLL_INTERVAL
    loop_interval: float = 10.0

    @property
    def lease(self) -> float:
        """How long a sender owns a deal row: a status check plus a send, with room to spare."""
        return 2 * self.timeout + 10.0

    def backoff(self, attempts: int) -> float:
        """Delay before the next send after `attempts` failed ones."""
        return states.backoff(attempts, self.retry_base, self.retry_cap)

    @classmethod
    def from_env(cls, **overrides: float) -> Tuning:
        """Defaults, then DATASET_WORKER_DEAL_TIMEOUT, …_RETRY_BASE, …_RETRY_CAP,
        …_POLL_INTERVAL, …_LOOP_INTERVAL, then `overrides`; ValueError naming a bad variable."""
        values: dict[str, float] = {}
        for name in ("timeout", "retry_base", "retry_cap", "poll_interval", "loop_interval"):
            variable = ENV_PREFIX + name.upper()
            text = os.environ.get(variable)
            if text:
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(
                        f"{variable} must be a number of seconds, got {text!r}"
                    ) from None
                if value <= 0:
                    raise ValueError(f"{variable} must be positive, got {text!r}")
                values[name] = value
        values.update(overrides)
        return cls(**values)
