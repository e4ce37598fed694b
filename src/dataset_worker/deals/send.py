"""One send of a deal proposal, or one status poll, and what to write afterwards.

Sending (docs/deals.md#retries): 200 accepts. A timeout, a dropped connection or a 5xx is
retried later with the same ULID and body; before re-sending, the SP is asked for the deal's
status, since the first send may have reached it (Curio then answers 200 to the status and
would answer 500 to a second POST of the same ULID). 429 and 503 wait for Retry-After when the SP
gives one. Any other 4xx is a rejection: final, kept with Curio's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dataset_worker.db.models import utcnow
from dataset_worker.deals import states
from dataset_worker.deals.mk20client import Answer, Mk20Client, TransportError
from dataset_worker.deals.store import Leased
from dataset_worker.deals.tuning import Tuning

PRODUCT_KEYS = ("ddo_v1", "pdp_v1")


@dataclass(frozen=True)
class Outcome:
    """What a send or poll found: the values to write on the row, and the delay it chose."""

    state: str
    values: dict[str, Any] = field(default_factory=dict)
    delay: float | None = None  # seconds to the next send or poll; None when final

    @property
    def final(self) -> bool:
        """True when nothing more will be sent or polled."""
        return self.state in states.FINAL


def _retry(
    leased: Leased, status: int | None, reason: str, retry_after: float | None, tuning: Tuning
) -> Outcome:
    attempts = leased.attempts + 1
    if attempts >= states.MAX_SEND_ATTEMPTS:
        return Outcome(
            states.FAILED,
            {
                "attempts": attempts,
                "last_status": status,
                "last_reason": f"gave up after {attempts} attempts: {reason}",
                "next_attempt_at": None,
            },
        )
    delay = (
        min(retry_after, states.RETRY_AFTER_CAP)
        if retry_after is not None
        else tuning.backoff(attempts)
    )
    return Outcome(
        states.PROPOSING,
        {
            "attempts": attempts,
            "last_status": status,
            "last_reason": reason,
            "next_attempt_at": utcnow() + timedelta(seconds=delay),
        },
        delay,
    )


def _accepted(leased: Leased, answer: Answer, sp_state: str | None, tuning: Tuning) -> Outcome:
    now = utcnow()
    return Outcome(
        states.ACCEPTED,
        {
            "attempts": leased.attempts + 1,
            "last_status": answer.status,
            "last_reason": None,
            "sp_state": sp_state or "accepted",
            "accepted_at": now,
            "next_attempt_at": now + timedelta(seconds=tuning.poll_interval),
        },
        tuning.poll_interval,
    )


def product_status(answer: Answer) -> tuple[str | None, str]:
    """(DealState, errorMsg) of the first product in a DealProductStatusResponse."""
    try:
        body = answer.json()
    except ValueError:
        return None, ""
    if isinstance(body, dict):
        for key in PRODUCT_KEYS:
            product = body.get(key)
            if isinstance(product, dict):
                return str(product.get("status") or "") or None, str(product.get("errorMsg") or "")
    return None, ""


def send(client: Mk20Client, leased: Leased, tuning: Tuning) -> Outcome:
    """Propose the leased deal once (after a status check when an earlier send may have landed)."""
    if leased.attempts > 0:
        try:
            known = client.deal_status(leased.ulid)
        except TransportError:
            known = None
        if known is not None and known.status == 200:
            sp_state, _ = product_status(known)
            return _accepted(leased, known, sp_state, tuning)
    try:
        answer = client.post_deal(leased.proposal)
    except TransportError as exc:
        return _retry(leased, None, str(exc), None, tuning)
    if answer.status == 200:
        return _accepted(leased, answer, None, tuning)
    reason = answer.reason or f"HTTP {answer.status}"
    if answer.status in (429, 503):
        return _retry(leased, answer.status, reason, answer.retry_after, tuning)
    if answer.status >= 500:
        return _retry(leased, answer.status, reason, None, tuning)
    return Outcome(
        states.REJECTED,
        {
            "attempts": leased.attempts + 1,
            "last_status": answer.status,
            "last_reason": reason,
            "next_attempt_at": None,
        },
    )


def poll(client: Mk20Client, leased: Leased, tuning: Tuning) -> Outcome:
    """Ask the SP how an accepted deal is doing; complete and failed are final."""
    try:
        answer = client.deal_status(leased.ulid)
    except TransportError as exc:
        return _poll_later({"last_reason": str(exc)}, tuning)
    if answer.status != 200:
        return _poll_later(
            {"last_status": answer.status, "last_reason": answer.reason or None}, tuning
        )
    sp_state, error = product_status(answer)
    if sp_state == states.COMPLETE:
        return Outcome(
            states.COMPLETE, {"sp_state": sp_state, "last_reason": None, "next_attempt_at": None}
        )
    if sp_state == states.FAILED:
        return Outcome(
            states.FAILED,
            {"sp_state": sp_state, "last_reason": error or "failed", "next_attempt_at": None},
        )
    return _poll_later({"sp_state": sp_state, "last_status": 200, "last_reason": None}, tuning)


def _poll_later(values: dict[str, Any], tuning: Tuning) -> Outcome:
    return Outcome(
        states.ACCEPTED,
        {**values, "next_attempt_at": utcnow() + timedelta(seconds=tuning.poll_interval)},
        tuning.poll_interval,
    )
