"""Benchmark: job claims on one PostgreSQL from many workers (claim latency p50/p99, claims/s).

A fresh PostgreSQL database gets --jobs ready pack jobs (auto chain off, so completing one runs
no hook). Each worker thread loops: claim the next job with the real `claim_next_job` (timed),
then mark it complete with the real `complete_job`, until nothing is left. Cases, each on a fresh
queue: 1 process x 1 thread (the baseline), then --processes x --threads. Every job must be
claimed exactly once (checked). Prints claims per second and the claim latency p50 and p99;
the ratio of claims/s shows how claiming scales with more workers (the machine is shared: the
ratio, measured in the same run, is what to compare).

Result (2026-12-06, 2 cores, idle, --jobs 20000): 4x4 claim p50 15.6 / 14.7 ms, p99 41.6 / 33.6
ms in two runs (1x1: p99 3.9 / 2.0 ms); 613 / 670 claim+complete cycles a second, 1.73 / 1.48
times 1x1. The 4x4 latency is mostly 16 claimers taking turns on 2 cores.

Usage: PYTHONPATH=. .venv/bin/python bench/claims.py [--jobs 4000] [--processes 4] [--threads 4]
       [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psycopg
from sqlalchemy import insert, update
from tests.support.jobs import make_local_preparation, new_worker

from dataset_worker.db import Database, open_database
from dataset_worker.db.models import Job, JobState, JobType, Preparation
from dataset_worker.db.queue import claim_next_job, complete_job

PG_ENV = "DATASET_WORKER_TEST_POSTGRES_URL"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def claimer(url: str, threads: int) -> list[tuple[int, float]]:
    """One process: `threads` threads claiming and completing until the queue is empty; returns
    (job id, claim seconds) for every claim."""
    db = Database(url, pool_size=threads + 1)
    got: list[tuple[int, float]] = []
    lock = threading.Lock()

    def loop() -> None:
        worker = new_worker(db)
        mine: list[tuple[int, float]] = []
        while True:
            started = time.perf_counter()
            job = claim_next_job(db, worker, [JobType.PACK])
            seconds = time.perf_counter() - started
            if job is None:
                break
            mine.append((job.id, seconds))
            complete_job(db, job.id, worker)
        with lock:
            got.extend(mine)

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    db.dispose()
    return got


def fill(db: Database, attachment: int, jobs: int) -> None:
    with db.write() as session:
        session.execute(update(Job).values(state=JobState.COMPLETE))
        session.execute(
            insert(Job),
            [{"type": JobType.PACK, "state": JobState.READY, "attachment_id": attachment}] * jobs,
        )


def run_case(url: str, processes: int, threads: int) -> tuple[float, list[float], int]:
    """Wall seconds, claim latencies, and the number of distinct jobs claimed."""
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        parts = list(pool.map(claimer, [url] * processes, [threads] * processes))
    wall = time.perf_counter() - started
    claims = [item for part in parts for item in part]
    counts = Counter(job_id for job_id, _ in claims)
    if counts and max(counts.values()) != 1:
        raise RuntimeError("a job was claimed twice")
    return wall, [seconds for _, seconds in claims], len(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--postgres-url", default=os.environ.get(PG_ENV, PG_DEFAULT))
    args = parser.parse_args()
    server = args.postgres_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"dw_bench_claims_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{server.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    try:
        db = open_database(url)
        rows = make_local_preparation(db, "claims", Path("/nonexistent"), None)
        with db.write() as session:
            session.execute(update(Preparation).values(auto_chain=False))
        print(f"load before: {os.getloadavg()[0]:.2f} (1 min); {os.cpu_count()} CPUs")
        results = {}
        for processes, threads in ((1, 1), (args.processes, args.threads)):
            fill(db, rows.attachment_id, args.jobs)
            wall, latencies, distinct = run_case(url, processes, threads)
            if distinct != args.jobs:
                raise RuntimeError(f"{distinct} of {args.jobs} jobs were claimed")
            cuts = statistics.quantiles(latencies, n=100)
            rate = len(latencies) / wall
            results[(processes, threads)] = rate
            print(
                f"{processes} process(es) x {threads} thread(s): {rate:8,.0f} claims/s "
                f"(claim + complete), claim p50 {cuts[49] * 1000:6.1f} ms, "
                f"p99 {cuts[98] * 1000:6.1f} ms; every job claimed once"
            )
        db.dispose()
        many = results[(args.processes, args.threads)] / results[(1, 1)]
        print(f"claims/s {args.processes}x{args.threads} / 1x1: {many:.2f}")
        print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
