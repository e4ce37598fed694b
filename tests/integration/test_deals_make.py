"""`make_deals` against the Curio stand-in, with pieces served by the real content provider."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dataset_worker.db import Database
from dataset_worker.deals import states
from dataset_worker.deals.errors import InvalidDealRequest
from dataset_worker.deals.make import MakeRequest, make_deals
from dataset_worker.deals.runner import DealRunner
from dataset_worker.deals.tuning import Tuning
from tests.support.curio_sp import CurioStandIn, curio_sp
from tests.support.deal_keys import KeySigner, key_signer
from tests.support.deals import Served, deal_rows, served_preparation

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
    while runner.run_due():
        pass
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
