"""The real `dataset-worker` CLI with stand-in job bodies, for process-level runtime tests.

Usage: python worker_harness.py MODE [dataset-worker arguments…]

Modes (every job type gets the same body unless said otherwise):
- quick: succeed at once;
- block: run until cancelled (checks `ctx.check_cancelled()` every few ms);
- stubborn: never look at cancellation (only a second signal or SIGKILL ends it);
- fail-scan: scan jobs fail once a pack job is processing; pack jobs block until cancelled;
- fail: fail at once, for good.
"""

from __future__ import annotations

import sys
import time

from sqlalchemy import select

from dataset_worker.cli import app
from dataset_worker.db.models import Job, JobState, JobType
from dataset_worker.worker.runtime import process
from dataset_worker.worker.runtime.context import Handler, JobContext


def quick(ctx: JobContext) -> None:
    ctx.logger.info("harness.ran", extra={"job": ctx.job_id})


def block(ctx: JobContext) -> None:
    while True:
        ctx.check_cancelled()
        time.sleep(0.005)


def stubborn(ctx: JobContext) -> None:
    while True:
        time.sleep(0.05)


def fail_when_pack_runs(ctx: JobContext) -> None:
    while True:
        with ctx.db.read() as session:
            states = set(session.scalars(select(Job.state).where(Job.type == JobType.PACK)))
        if JobState.PROCESSING in states:
            raise RuntimeError("scan failed on purpose")
        time.sleep(0.02)


def fail(ctx: JobContext) -> None:
    raise ValueError(f"job {ctx.job_id} failed on purpose")


MODES: dict[str, dict[JobType, Handler]] = {
    "quick": dict.fromkeys(JobType, quick),
    "block": dict.fromkeys(JobType, block),
    "stubborn": dict.fromkeys(JobType, stubborn),
    "fail-scan": {JobType.SCAN: fail_when_pack_runs, JobType.PACK: block},
    "fail": dict.fromkeys(JobType, fail),
}


def main() -> None:
    handlers = MODES[sys.argv.pop(1)]
    process.default_handlers = lambda: dict(handlers)  # type: ignore[attr-defined]
    app(prog_name="dataset-worker")


if __name__ == "__main__":
    main()
