"""Settings shared by every command: where the database and the state directory are."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DATABASE_URL = "DATASET_WORKER_DATABASE_URL"
ENV_STATE_DIR = "DATASET_WORKER_STATE_DIR"
ENV_ADMIN_TOKEN = "DATASET_WORKER_ADMIN_TOKEN"
ENV_WALLET_PASSPHRASE = "DATASET_WORKER_WALLET_PASSPHRASE"  # opens the wallet's key files
DEFAULT_STATE_DIR = ".dataset-worker"


@dataclass(frozen=True)
class Settings:
    """Where state lives. `database_url` defaults to a SQLite file inside `state_dir`."""

    state_dir: Path
    database_url: str

    @property
    def is_sqlite(self) -> bool:
        """True when the database is an embedded SQLite file."""
        return self.database_url.startswith("sqlite")


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path.resolve()}"


def load_settings(state_dir: str | Path | None = None, database_url: str | None = None) -> Settings:
    """Resolve settings: explicit arguments first, then the environment, then defaults.

    The state dir is made absolute so a child process started elsewhere sees the same one.
    """
    state = Path(state_dir or os.environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR).resolve()
    url = (
        database_url or os.environ.get(ENV_DATABASE_URL) or sqlite_url(state / "dataset-worker.db")
    )
    return Settings(state_dir=state, database_url=normalize_database_url(url))


def normalize_database_url(url: str) -> str:
    """Accept the forms people type and return a SQLAlchemy URL.

    `postgres://` and `postgresql://` use psycopg 3; Singularity's `sqlite:PATH` form is accepted.
    """
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:") and not url.startswith("sqlite://"):
        return sqlite_url(Path(url[len("sqlite:") :]))
    return url
