"""Defaults and limits that both the use-cases and the CLI's option declarations need.

Kept free of imports on purpose: the CLI reads them while it starts (for its option defaults and
help), before it knows which command runs, and must not load the database layer for that.
"""

from __future__ import annotations

# A preparation's sizes when none are given (Singularity's defaults).
DEFAULT_MAX_SIZE = "31.5GiB"
DEFAULT_MIN_PIECE_SIZE = "1MiB"

# Jobs per page of the jobs list.
DEFAULT_JOBS_LIMIT = 50
MAX_JOBS_LIMIT = 1000

# Entries per page of `prep explore`.
DEFAULT_EXPLORE_LIMIT = 100
MAX_EXPLORE_LIMIT = 1000

# A worker whose heartbeat is older than this is stale and its jobs go back to ready
# (`run --stale-after`; the fleet view uses the same default to call a worker stale).
DEFAULT_STALE_AFTER: float = 20.0
