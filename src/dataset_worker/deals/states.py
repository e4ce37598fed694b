"""Deal states (docs/deals.md#deal-states) and the retry delays of sends and polls."""

from __future__ import annotations

PROPOSING = "proposing"  # claimed; sent zero or more times, the SP's answer not yet final
ACCEPTED = "accepted"  # the SP answered 200: its own status is polled until it ends
COMPLETE = "complete"  # the SP reports the deal complete
FAILED = "failed"  # the SP reports the deal failed, or sending gave up
REJECTED = "rejected"  # the SP refused the proposal (a 4xx): final, with the SP's reason
STATES = (PROPOSING, ACCEPTED, COMPLETE, FAILED, REJECTED)
FINAL = frozenset({COMPLETE, FAILED, REJECTED})
# A piece counts as replicated by a deal in one of these states (schedules fill the rest).
LIVE = frozenset({PROPOSING, ACCEPTED, COMPLETE})

RETRY_BASE = 1.0  # seconds before the 2nd send; doubling up to RETRY_CAP
RETRY_CAP = 60.0
RETRY_AFTER_CAP = 3600.0  # a Retry-After longer than this is cut to it
MAX_SEND_ATTEMPTS = 30  # then the deal is failed ("gave up"); Retry-After waits count too
POLL_INTERVAL = 60.0  # seconds between status polls of an accepted deal


def backoff(attempts: int, base: float = RETRY_BASE, cap: float = RETRY_CAP) -> float:
    """Delay before the next send after `attempts` failed ones (1 → base, 2 → 2·base, …)."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))
