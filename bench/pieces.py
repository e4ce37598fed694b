"""Benchmark: `prep pieces` on 100,000 pieces with the PieceCID v2 column, against without it.

Sets up a database (SQLite; PostgreSQL too with --postgres, in a database of its own made on the
server of DATASET_WORKER_TEST_POSTGRES_URL and dropped at the end) holding one preparation with
N `cars` rows, bulk-inserted through Core: random 32-byte commitments wrapped as v1 piece CIDs,
dag-pb root CIDs, and the sizes a 32 GiB-piece preparation writes (CAR files just under the
31.5 GiB max size, the last piece of a source smaller, a small DAG piece every 100 rows).

Then times, with the v2 column and without it (the baseline: the same code path with
`views.piece_cid_v2_of` switched to return "", so the query and the views are built alike):

- the use-case, `list_pieces` (query and PieceView per row), in this process;
- the command, `dataset-worker prep pieces NAME --json`, each run a fresh process.

Runs with and without alternate, so a load change on the machine hits both; medians are shown.
Prints rows/s both ways and the ratio of the time with v2 to the time without (goal <= 1.1),
by the wall clock and by CPU time (this process and the command's; on a shared, loaded machine
the CPU ratio is the steadier one, the wall ratio also counts waits for a core).

Usage: PYTHONPATH=. .venv/bin/python bench/pieces.py [--pieces 100000] [--runs 5]
       [--cli-runs 3] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
from sqlalchemy import Table, insert

from dataset_worker.config import sqlite_url
from dataset_worker.content.cid import DAG_PB_PREFIX, cid_to_str, piece_cid
from dataset_worker.db import open_database
from dataset_worker.db.models import Car, PieceType, Preparation
from dataset_worker.prep import list_pieces, views

GOAL_RATIO = 1.1
NAME = "bench-pieces"
GIB = 1 << 30
PIECE_SIZE = 32 * GIB
MAX_SIZE = 31 * GIB + GIB // 2  # Singularity's usual 31.5 GiB CAR for 32 GiB pieces
MIN_PIECE_SIZE = 1 << 20
ENV_PG = "DATASET_WORKER_TEST_POSTGRES_URL"
# The command in a fresh process, as users run it; "off" switches the v2 column off first.
LAUNCH = """\
import sys
if sys.argv.pop(1) == "off":
    import dataset_worker.prep.views as views
    views.piece_cid_v2_of = lambda car: ""
from dataset_worker.cli import main
main()
"""


def sizes(index: int, rng: random.Random) -> tuple[PieceType, int, int]:
    """(type, file_size, piece_size) of row `index`, as a 32 GiB-piece preparation has them."""
    if index % 100 == 99:  # a DAG piece: small, padded up to the minimum piece size
        return PieceType.DAG, rng.randrange(4096, MIN_PIECE_SIZE // 128 * 127), MIN_PIECE_SIZE
    if index % 20 == 19:  # the last piece of a source: any size, the next power of two
        file_size = rng.randrange(MIN_PIECE_SIZE, MAX_SIZE)
        piece_size = max(MIN_PIECE_SIZE, 1 << (file_size * 128 // 127).bit_length())
        return PieceType.DATA, file_size, piece_size
    return PieceType.DATA, MAX_SIZE - rng.randrange(1, 1 << 20), PIECE_SIZE


def fill(url: str, count: int) -> None:
    """One preparation with `count` pieces, inserted through Core in batches."""
    rng = random.Random(42)
    db = open_database(url)  # creates the schema
    try:
        with db.write() as session:
            prep = Preparation(
                name=NAME, max_size=MAX_SIZE, piece_size=PIECE_SIZE, min_piece_size=MIN_PIECE_SIZE
            )
            session.add(prep)
            session.flush()
            prep_id = prep.id
        table = cast(Table, Car.__table__)
        now = datetime.now(UTC)
        for start in range(0, count, 10_000):
            rows: list[dict[str, Any]] = []
            for index in range(start, min(count, start + 10_000)):
                piece_type, file_size, piece_size = sizes(index, rng)
                root = DAG_PB_PREFIX + rng.randbytes(32)
                rows.append(
                    {
                        "created_at": now,
                        "piece_type": piece_type,
                        "piece_cid": piece_cid(rng.randbytes(32)),
                        "piece_size": piece_size,
                        "root_cid": root,
                        "file_size": file_size,
                        "min_piece_size_padding": 0,
                        "storage_path": f"{cid_to_str(root)}.car",
                        "num_of_files": rng.randrange(1, 5000),
                        "preparation_id": prep_id,
                    }
                )
            with db.write() as session:
                session.execute(insert(table), rows)
    finally:
        db.dispose()


@contextmanager
def v2_switched_off() -> Iterator[None]:
    """The baseline: the same path with the v2 computation returning "" (this process only)."""
    original = views.piece_cid_v2_of
    views.piece_cid_v2_of = lambda car: ""
    try:
        yield
    finally:
        views.piece_cid_v2_of = original


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: on a loaded machine it does not
    count the time other processes held the cores (a PostgreSQL server's time is left out)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


Times = dict[str, dict[str, list[float]]]  # case -> "wall" / "cpu" -> seconds of each run


def alternate(cases: dict[str, Callable[[], None]], runs: int) -> Times:
    """Wall and CPU seconds of each run of each case, the cases interleaved run by run."""
    times: Times = {name: {"wall": [], "cpu": []} for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            wall, cpu = time.perf_counter(), cpu_seconds()
            case()
            times[name]["wall"].append(time.perf_counter() - wall)
            times[name]["cpu"].append(cpu_seconds() - cpu)
    return times


def use_case_times(url: str, count: int, runs: int) -> Times:
    db = open_database(url, migrate=False)
    try:
        with_v2 = list_pieces(db, NAME)  # also warms the connection and the imports
        with v2_switched_off():
            without = list_pieces(db, NAME)
        if len(with_v2) != count or not all(p.piece_cid_v2 for p in with_v2):
            raise SystemExit(f"expected {count} pieces, each with a v2 piece CID")
        if any(p.piece_cid_v2 for p in without):
            raise SystemExit("the baseline still computed v2 piece CIDs")

        def on() -> None:
            list_pieces(db, NAME)

        def off() -> None:
            with v2_switched_off():
                list_pieces(db, NAME)

        return alternate({"v2": on, "no-v2": off}, runs)
    finally:
        db.dispose()


def cli_times(url: str, state_dir: Path, count: int, runs: int) -> Times:
    out = state_dir / "pieces.json"

    def command(mode: str) -> Callable[[], None]:
        argv = [sys.executable, "-c", LAUNCH, mode, "--state-dir", str(state_dir)]
        argv += ["--database-url", url, "prep", "pieces", NAME, "--json"]

        def run() -> None:
            with out.open("wb") as stdout:
                result = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE)
            if result.returncode != 0:
                raise SystemExit(f"prep pieces failed: {result.stderr.decode(errors='replace')}")

        return run

    for mode, wanted in (("on", True), ("off", False)):  # check each once, untimed
        command(mode)()
        pieces = json.loads(out.read_text())
        if len(pieces) != count or any(bool(p["pieceCidV2"]) != wanted for p in pieces):
            raise SystemExit(f"prep pieces --json ({mode}): not {count} rows as expected")
    return alternate({"v2": command("on"), "no-v2": command("off")}, runs)


def report(label: str, count: int, times: Times) -> None:
    print(label)
    for clock in ("wall", "cpu"):
        on, off = statistics.median(times["v2"][clock]), statistics.median(times["no-v2"][clock])
        ratio = on / off
        verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
        runs = zip(times["v2"][clock], times["no-v2"][clock], strict=True)
        shown = ", ".join(f"{on_:.2f}/{off_:.2f}" for on_, off_ in runs)
        print(
            f"  {clock:4}  with v2 {count / on:8.0f} rows/s  without {count / off:8.0f} rows/s  "
            f"ratio {ratio:.3f} (goal <= {GOAL_RATIO}): {verdict}"
        )
        print(f"        runs, seconds with/without: {shown}")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A database of its own on the test server; yields its URL and drops it at the end."""
    server = os.environ.get(ENV_PG, "").replace("postgresql+psycopg://", "postgresql://")
    if not server:
        raise SystemExit(
            f"--postgres needs {ENV_PG} (e.g. postgresql://postgres@127.0.0.1/postgres)"
        )
    name = f"dw_bench_pieces_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{server.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench(label: str, url: str, state_dir: Path, args: argparse.Namespace) -> None:
    began = time.perf_counter()
    fill(url, args.pieces)
    print(f"{label}: {args.pieces} pieces inserted in {time.perf_counter() - began:.1f} s")
    report(
        f"  use-case list_pieces, median of {args.runs}",
        args.pieces,
        use_case_times(url, args.pieces, args.runs),
    )
    report(
        f"  CLI `prep pieces --json` (fresh process), median of {args.cli_runs}",
        args.pieces,
        cli_times(url, state_dir, args.pieces, args.cli_runs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5, help="use-case runs per case")
    parser.add_argument("--cli-runs", type=int, default=3, help="CLI runs per case")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    args = parser.parse_args()
    print(f"prep pieces: with the PieceCID v2 column / without it; goal ratio <= {GOAL_RATIO}")
    with tempfile.TemporaryDirectory(prefix="bench-pieces-") as folder:
        state_dir = Path(folder)
        bench("SQLite", sqlite_url(state_dir / "bench.db"), state_dir, args)
        if args.postgres:
            with postgres_database() as url:
                bench("PostgreSQL", url, state_dir, args)


if __name__ == "__main__":
    main()
