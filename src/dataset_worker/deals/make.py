"""`deal make`: claim one deal per piece of a preparation with one provider, then send them.

Each piece gets a deal row first (store.insert_claim: never two for one piece and provider),
with a new ULID and the exact mk20.Deal body; then each is sent, and retried in this process a
few times (timeouts, 5xx, 429/503 after Retry-After). A deal still not answered when the
attempts run out stays `proposing`: the worker's deal loop, or the same `deal make` run again,
re-sends it with the same ULID.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import Deal, utcnow
from dataset_worker.deals import states, store
from dataset_worker.deals.errors import InvalidDealRequest
from dataset_worker.deals.mk20client import parse_sp_url
from dataset_worker.deals.pieces import (
    PROVIDER_PATTERN,
    PieceRef,
    check_url_template,
    find_preparation,
    preparation_pieces,
)
from dataset_worker.deals.queries import deal_views
from dataset_worker.deals.runner import DealRunner
from dataset_worker.deals.ulid import new_ulid
from dataset_worker.deals.views import DealView
from dataset_worker.deals.wire import MAX_URLS, MIN_DURATION, PRODUCTS, DealTerms, deal_body
from dataset_worker.publicurl import configured_public_url

DEFAULT_DURATION = 1_540_800  # epochs: 535 days, Singularity's default deal duration
DEFAULT_ATTEMPTS = 5  # sends per deal within one `deal make`
MAX_WAIT = 60.0  # seconds `deal make` waits before a re-send; a longer wait is the worker's


@dataclass(frozen=True)
class MakeRequest:
    """`deal make PREP --provider … --sp-url … --wallet …` and its options."""

    preparation: str
    provider: str
    sp_url: str
    client: str
    pieces: list[str] = field(default_factory=list)
    product: str = "ddo_v1"
    duration: int = DEFAULT_DURATION
    start_epoch: int | None = None
    allocation_id: int | None = None
    url_templates: list[str] = field(default_factory=list)
    indexing: bool = True
    announce_payload: bool = True


@dataclass(frozen=True)
class Planned:
    """A deal to claim: the piece and the body to send."""

    piece: PieceRef
    ulid: str
    body: dict[str, Any]


def canonical_provider(provider: str, client: str) -> str:
    """The provider id on the client's network (f01000 / t01000); InvalidDealRequest if malformed."""
    text = provider.strip().lower()
    if not PROVIDER_PATTERN.fullmatch(text):
        raise InvalidDealRequest(
            f'--provider must be a storage provider actor id such as f01000 or t01000, got "{provider}"',
            field="provider",
        )
    network = client[:1].lower() if client[:1].lower() in ("f", "t") else text[0]
    return network + text[1:]


def url_templates(templates: list[str]) -> list[str]:
    """The download URL templates, or the content provider's public URL + /piece/{pieceCid}."""
    if templates:
        if len(templates) > MAX_URLS:
            raise InvalidDealRequest(
                f"--url-template: at most {MAX_URLS} URLs per piece (Curio's limit)",
                field="urlTemplate",
            )
        return [check_url_template(t) for t in templates]
    public = configured_public_url()
    if public is None:
        raise InvalidDealRequest(
            "--url-template is required when no content provider public URL is configured "
            "(DATASET_WORKER_PUBLIC_URL)",
            field="urlTemplate",
        )
    return [f"{public}/piece/{{pieceCid}}"]


def check_terms(request: MakeRequest) -> None:
    """InvalidDealRequest naming the first broken rule of the deal terms."""
    if request.product not in PRODUCTS:
        raise InvalidDealRequest(
            f'--product must be one of {", ".join(PRODUCTS)}, got "{request.product}"',
            field="product",
        )
    if request.allocation_id is None and request.duration < MIN_DURATION:
        raise InvalidDealRequest(
            f"--duration must be at least {MIN_DURATION} epochs without --allocation-id, "
            f"got {request.duration}",
            field="duration",
        )
    if request.start_epoch is not None and request.start_epoch <= 0:
        raise InvalidDealRequest(
            f"--start-epoch must be positive, got {request.start_epoch}", field="startEpoch"
        )
    if request.allocation_id is not None and request.allocation_id <= 0:
        raise InvalidDealRequest(
            f"--allocation-id must be positive, got {request.allocation_id}", field="allocationId"
        )
    try:
        parse_sp_url(request.sp_url)
    except ValueError as exc:
        raise InvalidDealRequest(str(exc), field="spUrl") from None


def plan(db: Database, request: MakeRequest) -> tuple[int, str, list[Planned]]:
    """(preparation id, provider, deals to claim): every rule checked, nothing written."""
    check_terms(request)
    provider = canonical_provider(request.provider, request.client)
    templates = url_templates(request.url_templates)
    terms = DealTerms(
        provider=provider,
        client=request.client,
        duration=request.duration,
        start_epoch=request.start_epoch,
        allocation_id=request.allocation_id,
        indexing=request.indexing,
        announce_payload=request.announce_payload and request.indexing,
        product=request.product,
    )
    with db.read() as session:
        prep = find_preparation(session, request.preparation)
        pieces = preparation_pieces(session, prep, request.pieces)
        prep_id = prep.id
    if not pieces:
        raise InvalidDealRequest(
            f'preparation "{request.preparation}" has no pieces yet: prepare it first',
            field="preparation",
        )
    planned = []
    for piece in pieces:
        ulid = new_ulid()
        urls = [piece.url(t) for t in templates]
        planned.append(Planned(piece, ulid, deal_body(ulid, piece.piece_cid_v2, urls, terms)))
    return prep_id, provider, planned


def claim(
    db: Database,
    request: MakeRequest,
    prep_id: int,
    provider: str,
    planned: list[Planned],
) -> list[int]:
    """Claim a deal row per planned deal; the ids, an existing row's for a piece already dealt
    with this provider (its ULID and body are kept)."""

    def write(session: Session) -> list[int]:
        now = utcnow()
        ids = []
        for item in planned:
            row = store.claim_row(
                ulid=item.ulid,
                piece=item.piece,
                provider=provider,
                sp_url=request.sp_url,
                client=request.client,
                product=request.product,
                proposal=item.body,
                preparation_id=prep_id,
                schedule_id=None,
                now=now,
            )
            new_id = store.insert_claim(session, db.is_sqlite, row)
            if new_id is None:
                new_id = session.scalars(
                    select(Deal.id).where(
                        Deal.piece_cid == item.piece.piece_cid, Deal.provider == provider
                    )
                ).one()
            ids.append(new_id)
        return ids

    return db.run_write(write)


def send_claimed(runner: DealRunner, deal_ids: list[int], attempts: int = DEFAULT_ATTEMPTS) -> None:
    """Send each claimed deal until it is answered for good, or `attempts` sends were made."""
    for deal_id in deal_ids:
        for attempt in range(1, attempts + 1):
            outcome = runner.process(deal_id)
            if outcome is None or outcome.state != states.PROPOSING:
                break
            assert outcome.delay is not None
            if attempt == attempts or outcome.delay > MAX_WAIT:
                break  # left `proposing`: the worker's deal loop sends it when it is due
            time.sleep(outcome.delay)  # the SP asked for it (Retry-After) or backoff


def make_deals(
    db: Database, request: MakeRequest, runner: DealRunner, attempts: int = DEFAULT_ATTEMPTS
) -> list[DealView]:
    """Plan, claim and send the deals of `request`; their views afterwards."""
    prep_id, provider, planned = plan(db, request)
    deal_ids = claim(db, request, prep_id, provider, planned)
    send_claimed(runner, deal_ids, attempts)
    return deal_views(db, deal_ids)
