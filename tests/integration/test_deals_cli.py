"""`dataset-worker deal make|list|show` as subprocesses, with a wallet in the real keystore, the
Curio stand-in and the real content provider; the admin API's /api/deals on the same database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.exc import SAWarning

from dataset_worker.config import ENV_DATABASE_URL, ENV_WALLET_PASSPHRASE
from dataset_worker.db import Database
from dataset_worker.db.models import Deal
from dataset_worker.wallet.keystore import Keystore
from tests.integration.api_support import start_server
from tests.support.curio_sp import CurioStandIn, curio_sp
from tests.support.deals import Served, served_preparation

PASSPHRASE = "correct horse battery staple deals"
SECRET = bytes.fromhex("5a" * 31 + "01")


@pytest.fixture
def served(db: Database, database_url: str, tmp_path: Path) -> Iterator[Served]:
    with served_preparation(db, database_url, tmp_path) as found:
        yield found


@pytest.fixture
def sp() -> Iterator[CurioStandIn]:
    with curio_sp() as stand_in:
        yield stand_in


def wallet(state_dir: Path) -> str:
    """Import the test key into the keystore of `state_dir`; its address."""
    return Keystore(state_dir, PASSPHRASE).import_key(SECRET).address


def cli(
    state_dir: Path, database_url: str, *args: str, passphrase: str | None = PASSPHRASE
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ENV_DATABASE_URL: database_url}
    env.pop(ENV_WALLET_PASSPHRASE, None)
    if passphrase is not None:
        env[ENV_WALLET_PASSPHRASE] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "dataset_worker", "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # no controlling terminal: the passphrase is never prompted for
        timeout=120,
    )


def all_rows_text(db: Database) -> str:
    """Every row of every table, as text (to look for secrets in)."""
    metadata = MetaData()
    with warnings.catch_warnings():
        # SQLite cannot reflect the expression index ix_car_blocks_cid_key; the rows are read.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
        metadata.reflect(db.engine)
    parts = []
    with db.engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def secrets_in(text: str) -> list[str]:
    found = []
    for name, value in (("key hex", SECRET.hex()), ("passphrase", PASSPHRASE)):
        if value in text or value.upper() in text:
            found.append(name)
    return found


def test_deal_make_list_show_and_the_api(
    db: Database, database_url: str, served: Served, sp: CurioStandIn, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    address = wallet(state)
    make = cli(
        state, database_url, "deal", "make", served.prep.name, "--provider", "f01000",
        "--sp-url", sp.url, "--wallet", address, "--url-template", served.url_template, "--json",
    )  # fmt: skip
    assert make.returncode == 0, make.stderr
    made: list[dict[str, Any]] = json.loads(make.stdout)
    assert [d["pieceCid"] for d in made] == served.pieces
    assert {d["state"] for d in made} == {"accepted"}
    assert {d["client"] for d in made} == {address}
    assert sp.validation_errors == []
    assert {p.identifier for p in sp.posts()} == {d["ulid"] for d in made}
    # The SP fetched every piece and found its PieceCID v2 right.
    sp.wait_for(lambda s: all(d.status != "accepted" for d in s.deals.values()))
    assert {d.status for d in sp.deals.values()} == {"complete"}

    listed = cli(
        state,
        database_url,
        "deal",
        "list",
        "--prep",
        served.prep.name,
        "--state",
        "accepted",
        "--json",
    )
    assert listed.returncode == 0, listed.stderr
    assert sorted(d["ulid"] for d in json.loads(listed.stdout)) == sorted(d["ulid"] for d in made)
    table = cli(state, database_url, "deal", "list", "--provider", "f01000")
    assert table.returncode == 0 and made[0]["ulid"] in table.stdout
    shown = cli(state, database_url, "deal", "show", made[0]["ulid"], "--json")
    assert shown.returncode == 0, shown.stderr
    proposal = json.loads(shown.stdout)["proposal"]
    assert proposal["identifier"] == made[0]["ulid"]
    assert proposal["data"]["piece_cid"] == {"/": made[0]["pieceCidV2"]}
    bad = cli(state, database_url, "deal", "list", "--state", "sealed")
    assert bad.returncode == 1 and "--state must be one of" in bad.stderr

    server = start_server(tmp_path / "server-state", database_url)
    try:
        with server.client() as client:
            reply = client.get("/api/deals", params={"prep": served.prep.name})
            assert reply.status_code == 200, reply.text
            assert sorted(d["ulid"] for d in reply.json()) == sorted(d["ulid"] for d in made)
            one = client.get(f"/api/deals/{made[0]['ulid']}")
            assert one.status_code == 200 and one.json()["proposal"]["client"] == address
            assert client.get("/api/deals/99999").status_code == 404
            wrong = client.get("/api/deals", params={"state": "sealed"})
            assert wrong.status_code == 400 and wrong.json()["errors"][0]["field"] == "state"
            api_text = reply.text + one.text
    finally:
        server.shutdown()
    # The key and its passphrase are nowhere: rows, outputs, API replies, the server's log.
    outputs = make.stdout + make.stderr + listed.stdout + shown.stdout + table.stdout
    assert secrets_in(all_rows_text(db)) == []
    assert secrets_in(outputs + api_text + server.log()) == []


def test_without_the_passphrase_nothing_is_sent(
    database_url: str, served: Served, sp: CurioStandIn, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    address = wallet(state)
    args = ("deal", "make", served.prep.name, "--provider", "f01000", "--sp-url", sp.url,
            "--wallet", address, "--url-template", served.url_template)  # fmt: skip
    missing = cli(state, database_url, *args, passphrase=None)
    assert missing.returncode == 1 and ENV_WALLET_PASSPHRASE in missing.stderr
    wrong = cli(state, database_url, *args, passphrase="not it")
    assert wrong.returncode == 1 and "passphrase" in wrong.stderr
    assert sp.posts() == []


def test_dry_run_prints_the_bodies_and_stores_nothing(
    db: Database, database_url: str, served: Served, sp: CurioStandIn, tmp_path: Path
) -> None:
    address = wallet(tmp_path / "state")
    result = cli(
        tmp_path / "state", database_url, "deal", "make", served.prep.name, "--provider", "t01000",
        "--sp-url", sp.url, "--wallet", address, "--url-template", served.url_template,
        "--start-epoch", "4000000", "--dry-run", "--json", passphrase=None,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    bodies = json.loads(result.stdout)
    assert len(bodies) == len(served.pieces)
    # The provider follows the client's network (an f1 wallet: mainnet).
    assert {b["products"]["ddo_v1"]["provider"] for b in bodies} == {"f01000"}
    assert {b["products"]["ddo_v1"]["start_epoch"] for b in bodies} == {4000000}
    assert [list(sp.validator.iter_errors(b)) for b in bodies] == [[]] * len(bodies)
    assert sp.posts() == []
    with db.read() as session:
        assert session.scalars(select(Deal)).first() is None


def test_schedules_over_the_api(
    database_url: str, served: Served, sp: CurioStandIn, tmp_path: Path
) -> None:
    address = wallet(tmp_path / "state")
    server = start_server(tmp_path / "server-state", database_url)
    body = {
        "preparation": served.prep.name,
        "providers": [
            {"provider": "f01000", "spUrl": sp.url},
            {"provider": "f01001", "spUrl": sp.url},
        ],
        "client": address,
        "replicas": 2,
        "perDay": 10,
        "urlTemplate": served.url_template,
    }
    try:
        with server.client() as client:
            created = client.post("/api/schedules", json=body)
            assert created.status_code == 201, created.text
            schedule = created.json()
            assert schedule["state"] == "active" and schedule["perDay"] == 10
            assert [p["provider"] for p in schedule["providers"]] == ["f01000", "f01001"]
            listed = client.get("/api/schedules").json()
            assert [s["id"] for s in listed] == [schedule["id"]]
            paused = client.post(f"/api/schedules/{schedule['id']}/pause")
            assert paused.json()["state"] == "paused"
            assert (
                client.post(f"/api/schedules/{schedule['id']}/resume").json()["state"] == "active"
            )
            bad_cases = [
                ({**body, "replicas": 3}, "replicas"),
                ({**body, "client": "f1nope"}, "client"),
                ({**body, "urlTemplate": "http://x/no-placeholder"}, "urlTemplate"),
                ({**body, "providers": [{"provider": "f01000", "spUrl": "ftp://x"}]}, "providers"),
                ({**body, "duration": 10}, "duration"),
            ]
            for bad, field in bad_cases:
                reply = client.post("/api/schedules", json=bad)
                assert reply.status_code == 400, (field, reply.text)
                assert reply.json()["errors"][0]["field"] == field, reply.text
            unknown = client.post("/api/schedules", json={**body, "preparation": "nope"})
            assert unknown.status_code == 404
            gone = client.delete(f"/api/schedules/{schedule['id']}")
            assert gone.status_code == 200
            assert client.get(f"/api/schedules/{schedule['id']}").status_code == 404
    finally:
        server.shutdown()
