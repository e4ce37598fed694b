"""Benchmark: how soon an idle worker claims a job queued while it sleeps at the 160 s back-off.

Starts a real `dataset-worker run` (one thread, scan jobs only) with --min-interval and
--max-interval 160s, waits until it idles, then, round after round, creates a preparation (its
scan is queued) the way `prep create` does, rings the state dir's wake socket as `prep create`
does, and times until the worker has claimed the scan. On PostgreSQL (--database-url) the
worker is also woken by the trigger's NOTIFY; with --other-state-dir the bell is not rung, so
only NOTIFY can wake it.

Baseline, measured in the same run: a worker with no wake-up (another state dir, SQLite) that
polls every --baseline-poll seconds; its latency is about half its poll. Without wake-ups the
worker at the 160 s back-off waits up to 160 s (80 s on average).

--database-url must name a scratch database: the bench migrates it and creates (then deletes)
its own preparations there.

Usage: .venv/bin/python bench/wakeup.py [--rounds 5] [--database-url URL] [--other-state-dir]
       [--baseline-poll 2]
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from dataset_worker.config import sqlite_url
from dataset_worker.db import Database, open_database
from dataset_worker.db.models import Job, JobState, JobType
from dataset_worker.prep import CreatePreparationRequest, PrepError, create_preparation
from dataset_worker.prep.delete import delete_preparation
from dataset_worker.wakeup import ring

IDLE_FLAGS = ["--no-enable-pack", "--no-enable-dag", "--concurrency", "1"]


def start_worker(
    root: Path, state: Path, url: str, poll: str
) -> tuple[subprocess.Popen[bytes], Path]:
    log = root / f"worker-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "dataset_worker", "--state-dir", str(state)]
    command += ["--database-url", url, "run", *IDLE_FLAGS]
    command += ["--min-interval", poll, "--max-interval", poll]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    return process, log


def idle_count(log: Path) -> int:
    return log.read_text(errors="replace").count("worker.idle")


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.001)


def scan_state(db: Database, name_id: int) -> JobState | None:
    with db.read() as session:
        state: JobState | None = session.scalar(
            select(Job.state).where(Job.type == JobType.SCAN, Job.attachment_id == name_id).limit(1)
        )
        return state


def one_round(
    db: Database, root: Path, log: Path, state_dir: Path | None, name: str, seen: int
) -> tuple[float, int]:
    """Queue one scan while the worker sleeps; (seconds until it is claimed, idle lines logged
    when it was queued). `seen`: that count of the previous round (the worker must have gone
    idle again since)."""
    wait_for(lambda: idle_count(log) > seen, 300, "the worker to go idle")
    time.sleep(0.2)  # it is asleep now, not between its claim and its sleep
    asleep = idle_count(log)
    source = root / name
    source.mkdir()
    (source / "a.txt").write_text(name)
    began = time.perf_counter()
    view = create_preparation(
        db, CreatePreparationRequest(name=name, source=str(source), output=str(source) + "-cars")
    )
    if state_dir is not None:
        ring(state_dir)
    with db.read() as session:
        from dataset_worker.db.models import SourceAttachment

        attachment = session.scalar(
            select(SourceAttachment.id).where(SourceAttachment.preparation_id == view.id)
        )
    assert attachment is not None
    wait_for(lambda: scan_state(db, attachment) is not JobState.READY, 400, f"{name} claimed")
    return time.perf_counter() - began, asleep


def measure(
    run: str,
    db: Database,
    root: Path,
    url: str,
    poll: str,
    state: Path,
    ring_dir: Path | None,
    rounds: int,
    tag: str,
) -> list[float]:
    state.mkdir(parents=True, exist_ok=True)
    process, log = start_worker(root, state, url, poll)
    try:
        times, seen = [], 0
        for index in range(rounds):
            took, seen = one_round(db, root, log, ring_dir, f"{tag}-{run}-{index}", seen)
            times.append(took)
        return times
    finally:
        process.terminate()
        process.wait(30)
        for index in range(rounds):
            with contextlib.suppress(PrepError):
                delete_preparation(db, f"{tag}-{run}-{index}")


def show(label: str, values: list[float]) -> float:
    median = statistics.median(values)
    print(f"{label:<46} median {median * 1000:9.1f} ms   max {max(values) * 1000:9.1f} ms")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--other-state-dir", action="store_true")
    parser.add_argument("--baseline-poll", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dw-bench-wakeup-") as tmp:
        root = Path(tmp)
        url = args.database_url or sqlite_url(root / "bench.db")
        db = open_database(url)
        try:
            state = root / "state"
            ring_dir = None if args.other_state_dir else state
            kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
            run = secrets.token_hex(3)
            woken = measure(run, db, root, url, "160s", state, ring_dir, args.rounds, "woken")
            baseline_db = open_database(sqlite_url(root / "baseline.db"))
            try:
                polled = measure(
                    run,
                    baseline_db,
                    root,
                    sqlite_url(root / "baseline.db"),
                    f"{args.baseline_poll}s",
                    root / "baseline-state",
                    None,
                    args.rounds,
                    "polled",
                )
            finally:
                baseline_db.dispose()
        finally:
            db.dispose()
    how = (
        "NOTIFY only"
        if args.other_state_dir
        else "wake socket" + (" + NOTIFY" if kind == "PostgreSQL" else "")
    )
    print(f"claim latency of a job queued while the worker sleeps, {args.rounds} rounds")
    fast = show(f"{kind}, 160 s back-off, woken ({how})", woken)
    slow = show(f"SQLite, {args.baseline_poll:g} s poll, no wake-up (baseline)", polled)
    print(
        f"baseline / woken: x{slow / fast:,.0f};  160 s back-off / woken: x{80 / fast:,.0f} on average"
    )
    print("goal: claimed within 1 s:", "met" if max(woken) < 1.0 else "NOT met")


if __name__ == "__main__":
    main()
