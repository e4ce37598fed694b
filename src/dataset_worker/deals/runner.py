"""Send due proposals and poll accepted deals: one deal at a time, each under a lease (store.py).

Used by `deal make` for the deals it claims, and by the worker process's deal loop for every
due deal (retries after a timeout, 5xx or 429, status polls, and the deals schedules claim).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from dataset_worker.db import Database
from dataset_worker.db.models import utcnow
from dataset_worker.deals import send as sending
from dataset_worker.deals import states, store
from dataset_worker.deals.auth import Signer
from dataset_worker.deals.errors import WalletUnavailable
from dataset_worker.deals.mk20client import Mk20Client
from dataset_worker.deals.tuning import Tuning
from dataset_worker.logs import log_event

log = logging.getLogger("dataset_worker.deals")

SignerSource = Callable[[str], Signer]
WALLET_RETRY = 60.0  # seconds before a deal whose wallet could not be opened is tried again
LOG_EVERY = 300.0  # seconds between two log lines about one unavailable wallet


class DealRunner:
    """Sends and polls deals; keeps one kept-alive client per (SP URL, wallet)."""

    def __init__(self, db: Database, signers: SignerSource, tuning: Tuning | None = None) -> None:
        self.db = db
        self.signers = signers
        self.tuning = tuning or Tuning()
        self._clients: dict[tuple[str, str], Mk20Client] = {}
        self._wallet_logged: dict[str, float] = {}  # address -> when its absence was last logged

    def client(self, sp_url: str, address: str) -> Mk20Client:
        """The client for one SP and one wallet."""
        key = (sp_url, address)
        found = self._clients.get(key)
        if found is None:
            found = Mk20Client(sp_url, self.signers(address), timeout=self.tuning.timeout)
            self._clients[key] = found
        return found

    def process(self, deal_id: int) -> sending.Outcome | None:
        """Send or poll one deal if it is due and no other process holds it; its outcome."""
        leased = store.take_lease(self.db, deal_id, self.tuning.lease)
        if leased is None:
            return None
        try:
            client = self.client(leased.sp_url, leased.client)
        except WalletUnavailable as exc:
            # Not the SP's doing: try again a minute later, without counting an attempt, and
            # say so in the log once per wallet every few minutes (not once per deal).
            store.record(
                self.db,
                deal_id,
                last_reason=str(exc),
                next_attempt_at=utcnow() + timedelta(seconds=WALLET_RETRY),
            )
            now = time.monotonic()
            if now - self._wallet_logged.get(leased.client, -LOG_EVERY) >= LOG_EVERY:
                self._wallet_logged[leased.client] = now
                log_event(
                    log,
                    "deal.wallet_unavailable",
                    logging.WARNING,
                    wallet=leased.client,
                    error=str(exc),
                )
            return None
        if leased.state == states.ACCEPTED:
            outcome = sending.poll(client, leased, self.tuning)
        else:
            outcome = sending.send(client, leased, self.tuning)
        store.record(self.db, deal_id, state=outcome.state, **outcome.values)
        if outcome.state != leased.state or outcome.state == states.PROPOSING:
            log_event(
                log,
                "deal.state",
                logging.WARNING
                if outcome.state in (states.REJECTED, states.FAILED)
                else logging.INFO,
                deal=leased.ulid,
                state=outcome.state,
                status=outcome.values.get("last_status"),
                reason=outcome.values.get("last_reason"),
            )
        return outcome

    def run_due(self, limit: int = 200) -> int:
        """Process every due deal (up to `limit`); how many were processed here."""
        done = 0
        for deal_id in store.due_deal_ids(self.db, limit):
            if self.process(deal_id) is not None:
                done += 1
        return done

    def close(self) -> None:
        """Close every client's connection."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
