"""Serial plans for a pack job's short queries (PostgreSQL).

A pack job reads its ranges a page of 1000 at a time, by `(job_id, id)` through
`ix_file_ranges_job_range`. On a database of 10M files the planner chose a parallel Gather Merge
for that LIMIT query (it sizes a job at ~133k ranges where it holds ~59k), and JIT compilation
for the job's size aggregate. Measured there: a page took 7.1 to 9.5 ms with the two parallel
workers it started each time, 1.3 to 1.5 ms with the serial plan; JIT spent 21 ms of the
aggregate's 58. Neither pays for a query that reads a job's thousand rows by index. SQLite plans
neither: nothing is done there.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# One statement (one round trip); `true`: for the current transaction only, like SET LOCAL.
_SERIAL = text(
    "SELECT set_config('max_parallel_workers_per_gather', '0', true), set_config('jit', 'off', true)"
)


def serial_plans(session: Session) -> None:
    """For the rest of the caller's transaction on PostgreSQL: no parallel workers, no JIT."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_SERIAL)
