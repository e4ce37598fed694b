"""Deal schedules: create, list, pause, resume, delete, and run (claim the deals that are due).

Running a schedule claims deal rows in one write transaction that first locks the schedule row
(FOR UPDATE on PostgreSQL; SQLite's write lock serialises writers anyway), so the daily and
total limits hold however many workers run it at once, and across restarts (they are counted
from the deals table). Each piece gets up to `replicas` live deals with distinct providers; the
unique (piece, provider) pair makes a duplicate impossible. The claimed rows are due at once:
the deal loop (runner.py) sends them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import Car, Deal, DealSchedule, Preparation, utcnow
from dataset_worker.deals import states, store
from dataset_worker.deals.epochs import current_epoch
from dataset_worker.deals.errors import DealNotFound, InvalidDealRequest
from dataset_worker.deals.make import (
    DEFAULT_DURATION,
    MakeRequest,
    canonical_provider,
    check_terms,
    url_templates,
)
from dataset_worker.deals.mk20client import parse_sp_url
from dataset_worker.deals.pieces import PieceRef, find_preparation, piece_cid_v2
from dataset_worker.deals.ulid import new_ulid
from dataset_worker.deals.views import DealsView, ProviderTarget, ScheduleView
from dataset_worker.deals.wire import DealTerms, deal_body

ACTIVE, PAUSED = "active", "paused"
CLAIM_BATCH = 200  # deals one run of one schedule claims at most
MAX_REPLICAS = 100
IN_CHUNK = 5000  # piece CIDs per IN list


class CreateScheduleRequest(DealsView):
    """A schedule to create (`deal schedule create`, `POST /api/schedules`)."""

    model_config = ConfigDict(extra="forbid")

    preparation: str = Field(description="Preparation name or id.")
    providers: list[ProviderTarget] = Field(min_length=1, description="Providers, in order.")
    client: str = Field(description="The client wallet address (f1…/t1…).")
    replicas: int = Field(ge=1, le=MAX_REPLICAS, description="Deals per piece, distinct providers.")
    per_day: int | None = Field(default=None, ge=1, description="Deals per 24 h at most.")
    total: int | None = Field(default=None, ge=1, description="Deals in all at most.")
    product: str = "ddo_v1"
    duration: int = Field(default=DEFAULT_DURATION, description="Deal duration in epochs.")
    start_epoch_offset: int | None = Field(
        default=None, ge=1, description="Start epoch = current epoch + this, when each is made."
    )
    url_template: str | None = Field(
        default=None, description="Download URL with {pieceCid}; default: the public URL."
    )
    indexing: bool = True
    announce_payload: bool = True


def _providers(request: CreateScheduleRequest) -> list[dict[str, str]]:
    seen: set[str] = set()
    result = []
    for target in request.providers:
        provider = canonical_provider(target.provider, request.client)
        if provider in seen:
            raise InvalidDealRequest(
                f"--provider {target.provider} is given twice: replicas go to distinct providers",
                field="providers",
            )
        try:
            parse_sp_url(target.sp_url)
        except ValueError as exc:
            raise InvalidDealRequest(str(exc), field="providers") from None
        seen.add(provider)
        result.append({"provider": provider, "spUrl": target.sp_url.strip()})
    if request.replicas > len(result):
        raise InvalidDealRequest(
            f"--replicas {request.replicas} needs at least that many providers, got {len(result)}",
            field="replicas",
        )
    return result


def _client(address: str) -> str:
    """The wallet address in its canonical string form; InvalidDealRequest naming the rule."""
    from dataset_worker.wallet.address import parse_address

    try:
        parsed = parse_address(address)
    except ValueError as exc:
        raise InvalidDealRequest(f"client: {exc}", field="client") from None
    if parsed.protocol != 1:
        raise InvalidDealRequest(
            f"client {address}: deals are signed with secp256k1 wallets (f1…/t1…) only",
            field="client",
        )
    return str(parsed)


def create_schedule(db: Database, request: CreateScheduleRequest) -> ScheduleView:
    """Check and store a schedule (active at once)."""
    request = request.model_copy(update={"client": _client(request.client)})
    providers = _providers(request)
    check_terms(
        MakeRequest(
            preparation=request.preparation,
            provider=request.providers[0].provider,
            sp_url=request.providers[0].sp_url,
            client=request.client,
            product=request.product,
            duration=request.duration,
        )
    )
    template = url_templates([request.url_template] if request.url_template else [])[0]

    def write(session: Session) -> ScheduleView:
        prep = find_preparation(session, request.preparation)
        schedule = DealSchedule(
            preparation_id=prep.id,
            client=request.client,
            providers=providers,
            replicas=request.replicas,
            per_day=request.per_day,
            total=request.total,
            product=request.product,
            duration=request.duration,
            start_epoch_offset=request.start_epoch_offset,
            url_template=template,
            indexing=request.indexing,
            announce_payload=request.announce_payload and request.indexing,
            state=ACTIVE,
        )
        session.add(schedule)
        session.flush()
        return ScheduleView.from_model(schedule, prep.name, 0)

    return db.run_write(write)


def _made(session: Session, schedule_id: int) -> int:
    return session.scalar(select(func.count()).where(Deal.schedule_id == schedule_id)) or 0


def list_schedules(db: Database) -> list[ScheduleView]:
    """Every schedule, oldest first, with the deals each has made."""
    with db.read() as session:
        rows = session.execute(
            select(DealSchedule, Preparation.name)
            .join(Preparation, Preparation.id == DealSchedule.preparation_id)
            .order_by(DealSchedule.id)
        ).all()
        counts = dict(
            session.execute(
                select(Deal.schedule_id, func.count())
                .where(Deal.schedule_id.is_not(None))
                .group_by(Deal.schedule_id)
            ).all()
        )
        return [ScheduleView.from_model(s, name, counts.get(s.id, 0)) for s, name in rows]


def _schedule_id(key: str | int) -> int:
    text = str(key).strip()
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**63:
        raise InvalidDealRequest(f'a schedule is named by its numeric id, got "{key}"', field="id")
    return int(text)


def get_schedule(db: Database, key: str | int) -> ScheduleView:
    """One schedule by id."""
    schedule_id = _schedule_id(key)
    with db.read() as session:
        row = session.execute(
            select(DealSchedule, Preparation.name)
            .join(Preparation, Preparation.id == DealSchedule.preparation_id)
            .where(DealSchedule.id == schedule_id)
        ).one_or_none()
        if row is None:
            raise DealNotFound(f"schedule {key} not found")
        return ScheduleView.from_model(row[0], row[1], _made(session, schedule_id))


def set_schedule_state(db: Database, key: str | int, state: str) -> ScheduleView:
    """Pause or resume a schedule (deals already claimed are still sent and polled)."""
    schedule_id = _schedule_id(key)

    def write(session: Session) -> None:
        schedule = session.get(DealSchedule, schedule_id)
        if schedule is None:
            raise DealNotFound(f"schedule {key} not found")
        schedule.state = state

    db.run_write(write)
    return get_schedule(db, schedule_id)


def delete_schedule(db: Database, key: str | int) -> ScheduleView:
    """Delete a schedule; its deals stay (their schedule becomes null)."""
    view = get_schedule(db, key)

    def write(session: Session) -> None:
        schedule = session.get(DealSchedule, view.id)
        if schedule is not None:
            session.delete(schedule)

    db.run_write(write)
    return view


def run_schedule(db: Database, schedule_id: int) -> int:
    """Claim the deals this schedule may make now; how many were claimed."""

    def write(session: Session) -> int:
        schedule = session.scalars(
            select(DealSchedule).where(DealSchedule.id == schedule_id).with_for_update()
        ).one_or_none()
        if schedule is None or schedule.state != ACTIVE:
            return 0
        now = utcnow()
        allowance = CLAIM_BATCH
        if schedule.total is not None:
            allowance = min(allowance, schedule.total - _made(session, schedule_id))
        if schedule.per_day is not None:
            today = session.scalar(
                select(func.count()).where(
                    Deal.schedule_id == schedule_id, Deal.created_at > now - timedelta(days=1)
                )
            )
            allowance = min(allowance, schedule.per_day - (today or 0))
        if allowance <= 0:
            return 0
        return _claim(db, session, schedule, allowance)

    return db.run_write(write)


def _existing_deals(session: Session, piece_cids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """(provider, state) of every deal of these pieces, whoever made it; queried in chunks (a
    statement may carry at most 65,535 parameters on PostgreSQL)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for start in range(0, len(piece_cids), IN_CHUNK):
        chunk = piece_cids[start : start + IN_CHUNK]
        for piece_cid, provider, state in session.execute(
            select(Deal.piece_cid, Deal.provider, Deal.state).where(Deal.piece_cid.in_(chunk))
        ):
            found.setdefault(piece_cid, []).append((provider, state))
    return found


def _claim(db: Database, session: Session, schedule: DealSchedule, allowance: int) -> int:
    cars = session.execute(
        select(Car.id, Car.piece_cid, Car.piece_size, Car.file_size)
        .where(Car.preparation_id == schedule.preparation_id)
        .order_by(Car.id)
    ).all()
    texts = [cid_to_str(car.piece_cid) for car in cars]
    existing = _existing_deals(session, texts)
    start_epoch = (
        current_epoch(schedule.client) + schedule.start_epoch_offset
        if schedule.start_epoch_offset
        else None
    )
    now, claimed = utcnow(), 0
    for car, v1 in zip(cars, texts, strict=True):
        deals = existing.get(v1, [])
        need = schedule.replicas - sum(1 for _, state in deals if state in states.LIVE)
        used = {provider for provider, _ in deals}
        targets = [t for t in schedule.providers if t["provider"] not in used][: max(0, need)]
        if not targets:
            continue
        # The v2 CID only for the pieces that get deals: most runs find little to do.
        v2 = piece_cid_v2(v1, car.file_size, car.piece_size)
        if v2 is None:
            continue  # its sizes make no PieceCID v2: Market 2.0 cannot take it
        piece = PieceRef(car.id, v1, v2, car.piece_size, car.file_size)
        for target in targets:
            if claimed >= allowance:
                return claimed
            if _claim_one(db, session, schedule, piece, target, start_epoch, now):
                claimed += 1
    return claimed


def _claim_one(
    db: Database,
    session: Session,
    schedule: DealSchedule,
    piece: PieceRef,
    target: dict[str, str],
    start_epoch: int | None,
    now: datetime,
) -> bool:
    terms = DealTerms(
        provider=target["provider"],
        client=schedule.client,
        duration=schedule.duration,
        start_epoch=start_epoch,
        indexing=schedule.indexing,
        announce_payload=schedule.announce_payload,
        product=schedule.product,
    )
    ulid = new_ulid()
    body = deal_body(ulid, piece.piece_cid_v2, [piece.url(schedule.url_template)], terms)
    row = store.claim_row(
        ulid=ulid,
        piece=piece,
        provider=target["provider"],
        sp_url=target["spUrl"],
        client=schedule.client,
        product=schedule.product,
        proposal=body,
        preparation_id=schedule.preparation_id,
        schedule_id=schedule.id,
        now=now,
    )
    return store.insert_claim(session, db.is_sqlite, row) is not None


def run_due_schedules(db: Database) -> int:
    """Run every active schedule once; the deals claimed in all."""
    with db.read() as session:
        ids = list(session.scalars(select(DealSchedule.id).where(DealSchedule.state == ACTIVE)))
    return sum(run_schedule(db, schedule_id) for schedule_id in ids)
