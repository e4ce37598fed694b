"""Which function runs which job type. Job bodies are imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from dataset_worker.db.models import JobType
from dataset_worker.worker.runtime.context import Handler, JobContext

HANDLER_PATHS: Mapping[JobType, tuple[str, str]] = {
    JobType.SCAN: ("dataset_worker.worker.jobs.scan.job", "run_scan"),
    JobType.PACK: ("dataset_worker.worker.jobs.pack.job", "run_pack"),
    JobType.DAGGEN: ("dataset_worker.worker.jobs.daggen.job", "run_daggen"),
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
