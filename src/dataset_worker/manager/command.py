"""The real worker command: this Python running `dataset_worker run` on the server's settings."""

from __future__ import annotations

import sys

from dataset_worker.config import ENV_ADMIN_TOKEN, ENV_DATABASE_URL, Settings
from dataset_worker.manager.launchconfig import WorkerLaunchConfig
from dataset_worker.manager.launcher import child_env
from dataset_worker.manager.manager import CommandFactory


def worker_command(settings: Settings) -> CommandFactory:
    """Build argv for `config`: the same interpreter (never a `PATH` lookup) and the server's
    state dir. The database URL is not in it: see `worker_env`."""

    def build(config: WorkerLaunchConfig) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dataset_worker",
            "--state-dir",
            str(settings.state_dir),
            "run",
            *config.to_args(),
        ]

    return build


def worker_env(settings: Settings) -> dict[str, str]:
    """The worker's environment, carrying the server's database URL.

    The URL may hold a password, and any local user can read a process's argv (`ps`), while its
    environment is readable by its owner only; so the URL always travels here, set explicitly so
    the child never falls back to its own default.
    """
    return {**child_env((ENV_ADMIN_TOKEN,)), ENV_DATABASE_URL: settings.database_url}
