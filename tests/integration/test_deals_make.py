"""`make_deals` against the Curio stand-in, with pieces served by the real content provider."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.models import Car
from dataset_worker.deals import states
from dataset_worker.deals.errors import InvalidDealRequest
from dataset_worker.deals.make import MakeRequest, make_deals
from dataset_worker.deals.runner import DealRunner
from dataset_worker.deals.tuning import Tuning
from tests.support.curio_sp import CurioStandIn, curio_sp
from tests.support.deal_keys import KeySigner, key_signer
from tests.support.deals import Served, deal_rows, served_preparation
from tests.support.wait import wait_until

Runners = Callable[[KeySigner], DealRunner]
FAST = Tuning(timeout=5.0, retry_base=0.05, retry_cap=0.2, poll_interval=0.05)


@pytest.fixture
def served(db: Database, database_url: str, tmp_path: Path) -> Iterator[Served]:
    with served_preparation(db, database_url, tmp_path) as found:
        yield found


@pytest.fixture
def sp() -> Iterator[CurioStandIn]:
    with curio_sp() as stand_in:
        yield stand_in


def _request(served: Served, sp: CurioStandIn, signer: KeySigner, **extra: object) -> MakeRequest:
    return MakeRequest(
        preparation=served.prep.name,
        provider="f01000",
        sp_url=sp.url,
        client=signer.address,
        url_templates=[served.url_template],
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def runners(db: Database) -> Iterator[Callable[[KeySigner], DealRunner]]:
    """Runners signing with a given key; all closed at the end."""
    made: list[DealRunner] = []

    def make(signer: KeySigner) -> DealRunner:
        made.append(DealRunner(db, lambda _address: signer, FAST))
        return made[-1]

    yield make
    for runner in made:
        runner.close()


def test_make_deals_reach_complete_after_the_sp_checks_the_bytes(
    db: Database, served: Served, sp: CurioStandIn, runners: Runners
) -> None:
    signer = key_signer()
    runner = runners(signer)
    views = make_deals(db, _request(served, sp, signer), runner)
    assert [v.piece_cid for v in views] == served.pieces
    assert {v.state for v in views} == {states.ACCEPTED}
    assert sp.validation_errors == []
    # One POST per piece, each with its own ULID, each stored by the SP.
    posts = sp.posts()
    assert [p.status for p in posts] == [200] * len(served.pieces)
    assert {p.identifier for p in posts} == {v.ulid for v in views}
    sp.wait_for(lambda s: all(d.status != "accepted" for d in s.deals.values()))
    assert {d.status for d in sp.deals.values()} == {"complete"}, [
        d.error for d in sp.deals.values()
    ]
    # The worker's polls (here: the runner's) bring the SP's state into our rows.
    wait_until(
        lambda: runner.run_due() >= 0 and all(r.state == states.COMPLETE for r in deal_rows(db)),
        timeout=30,
        what="every deal polled complete",
    )
    rows = deal_rows(db)
    assert {r.state for r in rows} == {states.COMPLETE}
    assert {r.sp_state for r in rows} == {"complete"}


def test_making_again_sends_nothing_new(
    db: Database, served: Served, sp: CurioStandIn, runners: Runners
) -> None:
    signer = key_signer()
    runner = runners(signer)
    first = make_deals(db, _request(served, sp, signer), runner)
    again = make_deals(db, _request(served, sp, signer), runner)
    assert [v.ulid for v in again] == [v.ulid for v in first]
    assert len(sp.posts()) == len(served.pieces)
    assert len(deal_rows(db)) == len(served.pieces)


def test_a_rejection_is_final_with_curio_reason(
    db: Database, served: Served, sp: CurioStandIn, runners: Runners
) -> None:
    signer = key_signer()
    sp.arm("reject", times=1)
    views = make_deals(db, _request(served, sp, signer, pieces=[served.pieces[0]]), runners(signer))
    assert [v.state for v in views] == [states.REJECTED]
    assert views[0].last_status == 426
    assert views[0].last_reason == "Deal rejected by market: test rejection"
    assert len(sp.posts()) == 1


def test_curio_rules_reject_a_short_duration_before_sending(
    db: Database, served: Served, sp: CurioStandIn, runners: Runners
) -> None:
    signer = key_signer()
    with pytest.raises(InvalidDealRequest, match="--duration must be at least 518400"):
        make_deals(db, _request(served, sp, signer, duration=100), runners(signer))
    assert sp.posts() == [] and deal_rows(db) == []


def test_a_wrong_client_is_refused_by_the_sp(
    db: Database, served: Served, sp: CurioStandIn, runners: Runners
) -> None:
    signer, other = key_signer(1), key_signer(2)
    request = _request(served, sp, other, pieces=[served.pieces[0]])
    views = make_deals(db, request, runners(signer))  # signs as `signer`, claims `other`
    assert views[0].state == states.REJECTED
    assert views[0].last_reason == "client in deal does not match client in auth header"


def _one_ulid_per_piece(sp: CurioStandIn) -> dict[str, set[str | None]]:
    by_piece: dict[str, set[str | None]] = {}
    for post in sp.posts():
        assert post.piece_cid is not None
        by_piece.setdefault(post.piece_cid, set()).add(post.identifier)
    return by_piece


def test_a_timed_out_send_is_retried_with_the_same_ulid(
    db: Database, served: Served, sp: CurioStandIn
) -> None:
    signer = key_signer()
    # The SP stores the deal but answers after the client gave up (its answer is lost).
    sp.arm("timeout", seconds=3.0)
    runner = DealRunner(db, lambda _a: signer, Tuning(timeout=0.5, retry_base=0.05, retry_cap=0.1))
    try:
        views = make_deals(db, _request(served, sp, signer, pieces=[served.pieces[0]]), runner)
    finally:
        runner.close()
    assert [v.state for v in views] == [states.ACCEPTED]
    assert views[0].attempts == 2
    # One POST; the retry asked for the status first, found the deal there and sent no second one.
    assert len(sp.posts()) == 1 and len(sp.deals) == 1
    assert list(sp.deals) == [views[0].ulid]
    statuses = [r for r in sp.received if r.method == "GET"]
    assert [(r.identifier, r.status) for r in statuses] == [(views[0].ulid, 200)]


def test_a_500_is_resent_with_the_same_ulid(
    db: Database, served: Served, sp: CurioStandIn, runners: Runners
) -> None:
    signer = key_signer()
    sp.arm("500", times=2)
    views = make_deals(db, _request(served, sp, signer, pieces=[served.pieces[1]]), runners(signer))
    assert [v.state for v in views] == [states.ACCEPTED]
    assert [p.status for p in sp.posts()] == [500, 500, 200]
    assert _one_ulid_per_piece(sp) == {views[0].piece_cid_v2: {views[0].ulid}}
    # Before each re-send the SP was asked whether it knows the deal (it did not: 401, as Curio).
    assert [r.status for r in sp.received if r.method == "GET"] == [401, 401]


def test_a_429_storm_backs_off_and_never_doubles_a_deal(
    db: Database, served: Served, sp: CurioStandIn, runners: Runners
) -> None:
    signer = key_signer()
    sp.arm("429", times=8, seconds=0)  # Retry-After: 0
    views = make_deals(db, _request(served, sp, signer), runners(signer), attempts=10)
    assert {v.state for v in views} == {states.ACCEPTED}
    assert len([p for p in sp.posts() if p.status == 429]) == 8
    by_piece = _one_ulid_per_piece(sp)
    assert by_piece == {v.piece_cid_v2: {v.ulid} for v in views}
    assert sorted(sp.deals) == sorted(v.ulid for v in views)


def test_retry_after_sets_the_next_send(
    db: Database, served: Served, sp: CurioStandIn, runners: Runners
) -> None:
    signer = key_signer()
    sp.arm("503", seconds=600)
    views = make_deals(
        db, _request(served, sp, signer, pieces=[served.pieces[0]]), runners(signer), attempts=1
    )
    view = views[0]
    assert view.state == states.PROPOSING and view.last_status == 503
    assert view.last_reason == "service maintenance"
    assert view.next_attempt_at is not None
    wait = (view.next_attempt_at - view.updated_at).total_seconds()
    assert 590 <= wait <= 610
    # Not due: the worker's loop leaves it alone until then.
    assert runners(signer).run_due() == 0
    assert len(sp.posts()) == 1


def test_curio_default_policy_refuses_a_loopback_piece_url(
    db: Database, served: Served, sp: CurioStandIn, runners: Runners
) -> None:
    signer = key_signer()
    sp.allow_private_urls = False  # Curio's default SSRF policy
    views = make_deals(db, _request(served, sp, signer, pieces=[served.pieces[0]]), runners(signer))
    assert [v.state for v in views] == [states.REJECTED]
    assert views[0].last_status == 400
    assert views[0].last_reason == "invalid url: non-public ip 127.0.0.1 is not allowed"


def test_a_piece_whose_sizes_make_no_v2_cid_is_left_out(
    db: Database, served: Served, sp: CurioStandIn, runners: Runners
) -> None:
    signer = key_signer()
    with db.write() as session:
        car = session.scalars(
            select(Car).where(Car.preparation_id == served.prep.id).order_by(Car.id)
        ).first()
        assert car is not None
        car.file_size = car.piece_size  # more payload than the piece holds: no v2 CID
    bad = served.pieces[0]
    with pytest.raises(
        InvalidDealRequest, match=f"--piece {bad}: its recorded sizes make no PieceCID v2"
    ):
        make_deals(db, _request(served, sp, signer, pieces=[bad]), runners(signer))
    views = make_deals(db, _request(served, sp, signer), runners(signer))
    assert [v.piece_cid for v in views] == served.pieces[1:]
