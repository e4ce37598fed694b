"""Deal schedules run by real worker processes against Curio stand-ins: limits, distinct
providers, two workers on one schedule, a worker killed with SIGKILL and a fresh one resuming."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from dataset_worker.db import Database
from dataset_worker.deals import states
from tests.integration.test_deals_cli import (
    PASSPHRASE,
    SECRET,
    all_rows_text,
    cli,
    secrets_in,
    wallet,
)
from tests.support.curio_sp import CurioStandIn, curio_sp
from tests.support.deals import Served, deal_rows, deal_workers, served_preparation
from tests.support.wait import wait_until


@pytest.fixture
def served(db: Database, database_url: str, tmp_path: Path) -> Iterator[Served]:
    with served_preparation(db, database_url, tmp_path) as found:
        yield found


@pytest.fixture
def sps() -> Iterator[list[CurioStandIn]]:
    with ExitStack() as stack:
        yield [stack.enter_context(curio_sp()) for _ in range(3)]


def create_schedule(
    state: Path, database_url: str, served: Served, sps: list[CurioStandIn], *extra: str
) -> dict[str, object]:
    providers: list[str] = []
    for index, sp in enumerate(sps):
        providers += ["--provider", f"f0100{index}", "--sp-url", sp.url]
    result = cli(
        state, database_url, "deal", "schedule", "create", served.prep.name, *providers,
        "--wallet", wallet(state), "--url-template", served.url_template, "--json", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created: dict[str, object] = json.loads(result.stdout)
    return created


def cmdlines() -> str:
    """Every process's command line on this machine."""
    parts = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parts.append(
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                pass
    return "\n".join(parts)


def check_replicas(db: Database, sps: list[CurioStandIn], replicas: int) -> None:
    rows = deal_rows(db)
    by_piece: dict[str, list[str]] = {}
    for row in rows:
        by_piece.setdefault(row.piece_cid, []).append(row.provider)
    for providers in by_piece.values():
        assert len(providers) == len(set(providers)) <= replicas
    # Each SP holds exactly the deals we recorded for it, one ULID per piece.
    for index, sp in enumerate(sps):
        ours = {r.ulid for r in rows if r.provider == f"f0100{index}"}
        assert set(sp.deals) == ours
        pieces = Counter(d.body["data"]["piece_cid"]["/"] for d in sp.deals.values())
        assert all(n == 1 for n in pieces.values())


def test_two_workers_run_one_schedule_without_a_duplicate(
    db: Database, database_url: str, served: Served, sps: list[CurioStandIn], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    schedule = create_schedule(state, database_url, served, sps, "--replicas", "2", "--total", "5")
    assert schedule["state"] == "active" and schedule["dealsMade"] == 0
    with deal_workers(state, database_url, PASSPHRASE) as start:
        workers = [start(), start()]
        wait_until(
            lambda: (
                len(deal_rows(db)) == 5 and all(r.state == states.COMPLETE for r in deal_rows(db))
            ),
            timeout=90,
            what="5 complete deals",
        )
        processes = cmdlines()
        for worker in workers:
            worker.stop()
    rows = deal_rows(db)
    assert len(rows) == 5 and {r.schedule_id for r in rows} == {schedule["id"]}
    check_replicas(db, sps, 2)
    assert sum(len(sp.deals) for sp in sps) == 5
    assert all(sp.validation_errors == [] for sp in sps)
    listed = cli(state, database_url, "deal", "schedule", "list", "--json")
    assert json.loads(listed.stdout)[0]["dealsMade"] == 5
    # The key and passphrase: in no command line, log line or row.
    assert secrets_in(processes) == []
    assert secrets_in("".join(w.output() for w in workers)) == []
    assert secrets_in(all_rows_text(db)) == []
    assert SECRET.hex() not in processes


def test_a_schedule_resumes_after_kill_9_without_a_second_ulid(
    db: Database, database_url: str, served: Served, sps: list[CurioStandIn], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    create_schedule(state, database_url, served, sps[:1], "--replicas", "1", "--per-day", "2")
    # The first deal reaches the SP, which stores it and answers too late.
    sps[0].arm("timeout", seconds=30)
    env = {"DATASET_WORKER_DEAL_TIMEOUT": "2"}
    with deal_workers(state, database_url, PASSPHRASE, **env) as start:
        first = start()
        sps[0].wait_for(lambda s: len(s.deals) >= 1, timeout=60)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        claimed = deal_rows(db)
        assert len(claimed) == 2  # --per-day 2: both claimed before the kill
        second = start()
        wait_until(
            lambda: all(r.state == states.COMPLETE for r in deal_rows(db)),
            timeout=90,
            what="both deals complete after the restart",
        )
        second.stop()
    rows = deal_rows(db)
    assert [r.ulid for r in rows] == [r.ulid for r in claimed]  # same ULIDs as before the kill
    assert len(rows) == 2  # the daily limit held across the restart
    check_replicas(db, sps[:1], 1)
    assert len(sps[0].deals) == 2


def test_pause_resume_and_delete(
    db: Database, database_url: str, served: Served, sps: list[CurioStandIn], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    schedule = create_schedule(state, database_url, served, sps[:2], "--replicas", "2")
    sid = str(schedule["id"])
    paused = cli(state, database_url, "deal", "schedule", "pause", sid, "--json")
    assert json.loads(paused.stdout)["state"] == "paused"
    with deal_workers(state, database_url, PASSPHRASE) as start:
        worker = start()
        wait_until(lambda: "worker.start" in worker.output(), timeout=30, what="the worker start")
        assert deal_rows(db) == []
        resumed = cli(state, database_url, "deal", "schedule", "resume", sid, "--json")
        assert json.loads(resumed.stdout)["state"] == "active"
        wait_until(lambda: len(deal_rows(db)) == 2 * len(served.pieces), timeout=60, what="deals")
        worker.stop()
    deleted = cli(state, database_url, "deal", "schedule", "delete", sid)
    assert deleted.returncode == 0
    assert {r.schedule_id for r in deal_rows(db)} == {None}  # the deals stay
    missing = cli(state, database_url, "deal", "schedule", "pause", sid)
    assert missing.returncode == 1 and "not found" in missing.stderr
    too_many = cli(
        state, database_url, "deal", "schedule", "create", served.prep.name, "--provider", "f01",
        "--sp-url", sps[0].url, "--wallet", wallet(tmp_path / "other"), "--replicas", "2",
        "--url-template", served.url_template,
    )  # fmt: skip
    assert (
        too_many.returncode == 1
        and "--replicas 2 needs at least that many providers" in too_many.stderr
    )


def test_a_worker_without_the_passphrase_sends_nothing_and_says_so_once(
    db: Database, database_url: str, served: Served, sps: list[CurioStandIn], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    create_schedule(state, database_url, served, sps[:1], "--replicas", "1")
    with deal_workers(state, database_url, "") as start:  # the variable is set, but empty
        worker = start()
        wait_until(
            lambda: (
                len(deal_rows(db)) == len(served.pieces)
                and all(
                    r.last_reason and "DATASET_WORKER_WALLET_PASSPHRASE" in r.last_reason
                    for r in deal_rows(db)
                )
            ),
            timeout=60,
            what="every claimed deal waiting for the wallet",
        )
        worker.stop()
    assert {r.state for r in deal_rows(db)} == {states.PROPOSING}
    assert {r.attempts for r in deal_rows(db)} == {0}
    assert sps[0].received == []
    assert worker.output().count("deal.wallet_unavailable") == 1
