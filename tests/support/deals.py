"""Deal test helpers: a packed preparation served by a real content provider, and worker
processes whose deal loop runs fast."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from dataset_worker.config import ENV_DATABASE_URL, ENV_WALLET_PASSPHRASE
from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import Car, Deal
from tests.integration.provider_support import Provider, start_provider
from tests.support.preps import PackedPrep, packed_preparation

FILES: dict[str, int | bytes] = {"a.bin": 300_000, "b.bin": 700_000, "c/d.txt": 5_000}


@dataclass(frozen=True)
class Served:
    """A packed preparation, its piece CIDs and the content provider serving them."""

    prep: PackedPrep
    pieces: list[str]
    provider: Provider

    @property
    def url_template(self) -> str:
        return f"{self.provider.url}/piece/{{pieceCid}}"


@contextmanager
def served_preparation(
    db: Database, database_url: str, folder: Path, name: str = "dealt"
) -> Iterator[Served]:
    """Pack a small preparation (two data pieces and a DAG piece) and serve it."""
    prep = packed_preparation(db, folder, name, FILES, max_size="600KiB")
    with db.read() as session:
        pieces = [
            cid_to_str(c)
            for c in session.scalars(
                select(Car.piece_cid).where(Car.preparation_id == prep.id).order_by(Car.id)
            )
        ]
    provider = start_provider(database_url, folder)
    try:
        yield Served(prep, pieces, provider)
    finally:
        provider.stop()


def deal_rows(db: Database) -> list[Deal]:
    """Every deal row, by id."""
    with db.read() as session:
        return list(session.scalars(select(Deal).order_by(Deal.id)))


@dataclass
class DealWorker:
    """A `dataset-worker run` process whose deal loop runs fast, its output in a file."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


FAST_DEALS = {
    "DATASET_WORKER_DEAL_LOOP_INTERVAL": "0.2",
    "DATASET_WORKER_DEAL_POLL_INTERVAL": "0.2",
    "DATASET_WORKER_DEAL_RETRY_BASE": "0.1",
    "DATASET_WORKER_DEAL_RETRY_CAP": "0.5",
}


@contextmanager
def deal_workers(
    state_dir: Path, database_url: str, passphrase: str, **env: str
) -> Iterator[Callable[[], DealWorker]]:
    """Start worker processes with `start()`; every one still running at the end is killed."""
    started: list[DealWorker] = []

    def start() -> DealWorker:
        log = state_dir.parent / f"worker-{time.monotonic_ns()}.log"
        command = [sys.executable, "-m", "dataset_worker", "--state-dir", str(state_dir), "run"]
        environment = {
            **os.environ,
            ENV_DATABASE_URL: database_url,
            ENV_WALLET_PASSPHRASE: passphrase,
            **FAST_DEALS,
            **env,
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=environment
            )
        started.append(DealWorker(process, log))
        return started[-1]

    try:
        yield start
    finally:
        for worker in started:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
