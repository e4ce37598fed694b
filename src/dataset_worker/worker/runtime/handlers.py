"""Which function runs which job type, and what follows a job's completion. Job bodies and
hooks are imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from sqlalchemy.orm import Session

from dataset_worker.db.models import JobType
from dataset_worker.db.queue import CompletionHook
from dataset_worker.worker.runtime.context import Handler, JobContext

HANDLER_PATHS: Mapping[JobType, tuple[str, str]] = {
    JobType.SCAN: ("dataset_worker.worker.jobs.scan.job", "run_scan"),
    JobType.PACK: ("dataset_worker.worker.jobs.pack.job", "run_pack"),
    JobType.DAGGEN: ("dataset_worker.worker.jobs.daggen.job", "run_daggen"),
}


# Run in the transaction that marks a job of the type complete (see db/queue complete_job): the
# pipeline's next step is queued atomically with the completion that makes it due.
COMPLETION_HOOK_PATHS: Mapping[JobType, tuple[str, str]] = {
    JobType.SCAN: ("dataset_worker.worker.jobs.chain", "after_scan_complete"),
    JobType.PACK: ("dataset_worker.worker.jobs.chain", "after_pack_complete"),
    JobType.DAGGEN: ("dataset_worker.worker.jobs.chain", "after_daggen_complete"),
}


class HandlerUnavailable(RuntimeError):
    """The job body of a type cannot be imported; the job fails with this message."""


def default_handlers() -> dict[JobType, Handler]:
    """The real job bodies, imported lazily so the runtime starts even if one is missing."""
    return {job_type: _lazy(module, name) for job_type, (module, name) in HANDLER_PATHS.items()}


def _lazy(module: str, name: str) -> Handler:
    def handler(ctx: JobContext) -> None:
        try:
            function: Handler = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise HandlerUnavailable(
                f"{ctx.job_type} jobs cannot run: {module}.{name} is not available ({exc})"
            ) from exc
        function(ctx)

    return handler


def default_completion_hooks() -> dict[JobType, CompletionHook]:
    """The real pipeline's hooks (the auto chain), imported on first use."""
    return {
        job_type: _lazy_hook(module, name)
        for job_type, (module, name) in COMPLETION_HOOK_PATHS.items()
    }


def _lazy_hook(module: str, name: str) -> CompletionHook:
    def hook(session: Session, job_id: int) -> None:
        function: CompletionHook = getattr(importlib.import_module(module), name)
        function(session, job_id)

    return hook
