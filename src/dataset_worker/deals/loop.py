"""The worker process's deal loop: run the due schedules, then send and poll the due deals.

Started by `dataset-worker run` next to its heartbeat and reaper loops. The wallet keys are
loaded from the keystore in the state dir on first use, with the passphrase from the
environment; a wallet that cannot be opened is logged (without any secret) and its deals wait.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from dataset_worker.config import ENV_WALLET_PASSPHRASE
from dataset_worker.db import Database
from dataset_worker.deals.auth import Signer
from dataset_worker.deals.errors import WalletUnavailable
from dataset_worker.deals.runner import DealRunner
from dataset_worker.deals.schedules import run_due_schedules
from dataset_worker.deals.signer import load_signer
from dataset_worker.deals.tuning import Tuning
from dataset_worker.logs import log_event

log = logging.getLogger("dataset_worker.deals")


class KeystoreSigners:
    """Signers by wallet address, each loaded once from the keystore."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._cache: dict[str, Signer] = {}
        self._lock = threading.Lock()

    def __call__(self, address: str) -> Signer:
        with self._lock:
            found = self._cache.get(address)
            if found is None:
                # A background process has no terminal to ask on: the environment only.
                passphrase = os.environ.get(ENV_WALLET_PASSPHRASE)
                if not passphrase:
                    raise WalletUnavailable(
                        f"{ENV_WALLET_PASSPHRASE} is not set in the worker's environment: "
                        f"the deals of wallet {address} wait"
                    )
                found = load_signer(self.state_dir, address, passphrase)
                self._cache[address] = found
            return found


def run_deal_loop(
    db: Database, state_dir: Path, stop: threading.Event, tuning: Tuning | None = None
) -> None:
    """Every `tuning.loop_interval` seconds until `stop`: schedules, then due deals."""
    settings = tuning or Tuning.from_env()
    runner = DealRunner(db, KeystoreSigners(state_dir), settings)
    try:
        while True:
            try:
                claimed = run_due_schedules(db)
                if claimed:
                    log_event(log, "deals.claimed", deals=claimed)
                runner.run_due()
            except Exception as exc:  # a database hiccup: log it and go on next round
                log_event(
                    log, "deals.loop_failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}"
                )
            if stop.wait(settings.loop_interval):
                return
    finally:
        runner.close()
