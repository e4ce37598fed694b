"""Which function runs which job type, and what follows a job's completion.

The job bodies and hooks are imported inside the loaders below, on first use: the runtime starts
without loading them (and a broken one fails only its own jobs). The imports are plain statements,
so the layer contracts (`.importlinter`) see the runtime's imports of `worker/jobs/`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy.orm import Session

from dataset_worker.db.models import JobType
from dataset_worker.db.queue import CompletionHook
from dataset_worker.worker.runtime.context import Handler, JobContext


def _scan() -> Handler:
    from dataset_worker.worker.jobs.scan.job import run_scan

    return run_scan


def _pack() -> Handler:
    from dataset_worker.worker.jobs.pack.job import run_pack

    return run_pack


def _daggen() -> Handler:
    from dataset_worker.worker.jobs.daggen.job import run_daggen

    return run_daggen


HANDLER_LOADERS: Mapping[JobType, Callable[[], Handler]] = {
    JobType.SCAN: _scan,
    JobType.PACK: _pack,
    JobType.DAGGEN: _daggen,
}


def _after_scan() -> CompletionHook:
    from dataset_worker.worker.jobs.chain import after_scan_complete

    return after_scan_complete


def _after_pack() -> CompletionHook:
    from dataset_worker.worker.jobs.chain import after_pack_complete

    return after_pack_complete


def _after_daggen() -> CompletionHook:
    from dataset_worker.worker.jobs.chain import after_daggen_complete

    return after_daggen_complete


# Run in the transaction that marks a job of the type complete (see db/queue complete_job): the
# pipeline's next step is queued atomically with the completion that makes it due.
COMPLETION_HOOK_LOADERS: Mapping[JobType, Callable[[], CompletionHook]] = {
    JobType.SCAN: _after_scan,
    JobType.PACK: _after_pack,
    JobType.DAGGEN: _after_daggen,
}


class HandlerUnavailable(RuntimeError):
    """The job body of a type cannot be imported; the job fails with this message."""


def default_handlers() -> dict[JobType, Handler]:
    """The real job bodies, imported lazily so the runtime starts even if one is missing."""
    return {job_type: _lazy(job_type, load) for job_type, load in HANDLER_LOADERS.items()}


def _lazy(job_type: JobType, load: Callable[[], Handler]) -> Handler:
    def handler(ctx: JobContext) -> None:
        try:
            function = load()
        except ImportError as exc:
            raise HandlerUnavailable(
                f"{ctx.job_type} jobs cannot run: the {job_type} job body is not available ({exc})"
            ) from exc
        function(ctx)

    return handler


def default_completion_hooks() -> dict[JobType, CompletionHook]:
    """The real pipeline's hooks (the auto chain), imported on first use."""
    return {job_type: _lazy_hook(load) for job_type, load in COMPLETION_HOOK_LOADERS.items()}


def _lazy_hook(load: Callable[[], CompletionHook]) -> CompletionHook:
    def hook(session: Session, job_id: int) -> None:
        load()(session, job_id)

    return hook
