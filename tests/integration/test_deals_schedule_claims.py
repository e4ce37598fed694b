"""Schedule claims in process, on SQLite and PostgreSQL: replicas with distinct providers, the
daily and total limits, concurrent runs, and the chunked lookup of existing deals."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from dataset_worker.db import Database
from dataset_worker.deals import schedules
from dataset_worker.deals.schedules import CreateScheduleRequest, create_schedule, run_schedule
from dataset_worker.deals.views import ProviderTarget
from tests.support.deal_keys import key_signer
from tests.support.deals import FILES, deal_rows
from tests.support.preps import PackedPrep, packed_preparation

PROVIDERS = ["f01000", "f01001", "f01002"]


@pytest.fixture
def prep(db: Database, tmp_path: Path) -> PackedPrep:
    return packed_preparation(db, tmp_path, "claims", FILES, max_size="600KiB")  # 3 pieces


def schedule(db: Database, prep: PackedPrep, **fields: int) -> int:
    request = CreateScheduleRequest(
        preparation=prep.name,
        providers=[ProviderTarget(provider=p, sp_url="http://127.0.0.1:9") for p in PROVIDERS],
        client=key_signer().address,
        url_template="http://127.0.0.1:9/piece/{pieceCid}",
        **fields,
    )
    return create_schedule(db, request).id


def test_replicas_go_to_distinct_providers_and_stop_when_reached(
    db: Database, prep: PackedPrep
) -> None:
    sid = schedule(db, prep, replicas=2)
    assert run_schedule(db, sid) == 6  # 3 pieces x 2 replicas
    assert run_schedule(db, sid) == 0  # nothing left to do
    rows = deal_rows(db)
    by_piece = Counter(r.piece_cid for r in rows)
    assert set(by_piece.values()) == {2}
    assert all(len({r.provider for r in rows if r.piece_cid == p}) == 2 for p in by_piece)
    assert {r.proposal["products"]["ddo_v1"]["provider"] == r.provider for r in rows} == {True}


def test_limits_hold_across_runs_and_concurrent_runs(
    db: Database, prep: PackedPrep, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedules, "IN_CHUNK", 1)  # the existing deals are looked up piece by piece
    sid = schedule(db, prep, replicas=3, total=5, per_day=4)
    threads = [threading.Thread(target=run_schedule, args=(db, sid)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(deal_rows(db)) == 4  # per day
    assert run_schedule(db, sid) == 0
    made = Counter((r.piece_cid, r.provider) for r in deal_rows(db))
    assert set(made.values()) == {1}


def test_a_paused_schedule_claims_nothing(db: Database, prep: PackedPrep) -> None:
    sid = schedule(db, prep, replicas=1)
    schedules.set_schedule_state(db, sid, schedules.PAUSED)
    assert run_schedule(db, sid) == 0 and deal_rows(db) == []
    schedules.set_schedule_state(db, sid, schedules.ACTIVE)
    assert run_schedule(db, sid) == 3
