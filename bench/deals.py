"""Benchmark: 1,000 deals proposed and tracked against the Curio stand-in on loopback (SQLite).

Sets up a SQLite database with one preparation of N pieces (synthetic `cars` rows: random
commitments, 1 MiB pieces; no CAR files, since the SP's downloads are left out), starts the
Curio stand-in of the test suite (every request's body validated against Curio's swagger.json,
every CurioAuth signature recovered and checked) with its downloads off, then:

1. **propose**: `make_deals` for the whole preparation with one provider: claim N rows, then
   sign and POST each deal and record the answer (the path `deal make` takes);
2. **track**: the SP marks every deal complete; the deal runner polls each deal's status once
   and records it (the path the worker's deal loop takes).

Prints the time of each phase, deals per second, and the ratio of the total to the goal (30 s
for 1,000 deals; below 1.0 meets it).

Usage: PYTHONPATH=. .venv/bin/python bench/deals.py [--deals 1000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tests.support.curio_sp import curio_sp
from tests.support.deal_keys import key_signer

from dataset_worker.config import sqlite_url
from dataset_worker.content.cid import piece_cid
from dataset_worker.db import open_database
from dataset_worker.db.models import Car, PieceType, Preparation
from dataset_worker.deals.make import MakeRequest, make_deals
from dataset_worker.deals.runner import DealRunner
from dataset_worker.deals.tuning import Tuning

GOAL_SECONDS = 30.0
GOAL_DEALS = 1000
PIECE_SIZE = 1 << 20


def fill(database: Path, count: int) -> None:
    """One preparation with `count` synthetic pieces."""
    db = open_database(sqlite_url(database))
    try:
        with db.write() as session:
            prep = Preparation(
                name="bench-deals",
                max_size=PIECE_SIZE,
                piece_size=PIECE_SIZE,
                min_piece_size=PIECE_SIZE,
            )
            session.add(prep)
            session.flush()
            session.add_all(
                Car(
                    piece_type=PieceType.DATA,
                    piece_cid=piece_cid(os.urandom(31) + b"\x01"),
                    piece_size=PIECE_SIZE,
                    root_cid=b"",
                    file_size=PIECE_SIZE // 128 * 127 - index % 1000,
                    preparation_id=prep.id,
                )
                for index in range(count)
            )
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deals", type=int, default=GOAL_DEALS)
    args = parser.parse_args()
    signer = key_signer(42)
    with tempfile.TemporaryDirectory(prefix="bench-deals-") as folder:
        database = Path(folder) / "bench.db"
        fill(database, args.deals)
        db = open_database(sqlite_url(database))
        tuning = Tuning(timeout=10.0, poll_interval=0.001)
        runner = DealRunner(db, lambda _address: signer, tuning)
        try:
            with curio_sp(download=False) as sp:
                request = MakeRequest(
                    preparation="bench-deals",
                    provider="f01000",
                    sp_url=sp.url,
                    client=signer.address,
                    url_templates=["http://127.0.0.1:1/piece/{pieceCid}"],
                )
                began = time.perf_counter()
                views = make_deals(db, request, runner)
                proposed = time.perf_counter() - began
                accepted = sum(1 for v in views if v.state == "accepted")
                if accepted != args.deals or sp.validation_errors:
                    raise SystemExit(
                        f"only {accepted} of {args.deals} deals accepted: {sp.validation_errors[:3]}"
                    )
                with sp.changed:
                    for deal in sp.deals.values():
                        deal.status = "complete"
                began = time.perf_counter()
                tracked = 0
                while tracked < args.deals:
                    done = runner.run_due(limit=args.deals)
                    tracked += done
                    if not done:
                        time.sleep(0.002)  # the next polls fall due in a millisecond
                polled = time.perf_counter() - began
        finally:
            runner.close()
            db.dispose()
    total = proposed + polled
    goal = GOAL_SECONDS * args.deals / GOAL_DEALS
    print(f"deals: {args.deals} against the Curio stand-in on 127.0.0.1 (SQLite, downloads off)")
    print(
        f"propose (claim, sign, POST, record): {proposed:7.2f} s  {args.deals / proposed:8.0f} deals/s"
    )
    print(
        f"track (status poll, record):         {polled:7.2f} s  {args.deals / polled:8.0f} deals/s"
    )
    print(
        f"total: {total:.2f} s; goal {goal:.1f} s; ratio to goal {total / goal:.2f} (below 1.0 meets it)"
    )


if __name__ == "__main__":
    main()
