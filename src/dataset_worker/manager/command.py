"""The real worker command: this Python running `dataset_worker run` on the server's settings."""

from __future__ import annotations

import sys

from dataset_worker.config import Settings
from dataset_worker.manager.launchconfig import WorkerLaunchConfig
from dataset_worker.manager.manager import CommandFactory


def worker_command(settings: Settings) -> CommandFactory:
    """Build argv for `config`: the same interpreter (never a `PATH` lookup), and the server's
    state dir and database URL passed explicitly (never left to the child's defaults)."""

    def build(config: WorkerLaunchConfig) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dataset_worker",
            "--state-dir",
            str(settings.state_dir),
            "--database-url",
            settings.database_url,
            "run",
            *config.to_args(),
        ]

    return build
