"""Benchmark: latency of the admin API under 50 concurrent clients with 1,000,000 jobs (SQLite).

Sets up a state dir with a SQLite database holding 1,000,000 jobs (bulk-inserted with a recursive
CTE), starts `dataset-worker serve` in a subprocess and a worker through the API (all jobs are in
states no worker claims, so it idles), then drives GET /api/dataset-worker/status and
GET /api/dataset-worker/jobs?limit=50 in turn with N keep-alive clients in a closed loop (each
sends its next request when the previous reply is in). The clients are raw asyncio HTTP/1.1 in
this process, light enough to leave the CPU to the server. Prints requests per second, p50 and
p99 per endpoint, and whether p99 meets the goal (50 ms). A last row, outside the goal, asks for
a random page each time (no two requests alike, so the server's reply cache never answers): the
cost of the database path itself.

Usage: .venv/bin/python bench/api.py [--jobs 1000000] [--clients 50] [--seconds 10]
       [--server-processes 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from dataset_worker.config import ENV_ADMIN_TOKEN, sqlite_url
from dataset_worker.db import open_database

TOKEN = "bench-token-0123456789abcdef"
MAX_CURSOR = 1_000_000  # set from --jobs
GOAL_P99_SECONDS = 0.050
ENDPOINTS = ("/api/dataset-worker/status", "/api/dataset-worker/jobs?limit=50")
# Not part of the goal: every request asks for another page (a random cursor), so none is
# answered from the reply cache; shows the cost of the database path itself.
UNCACHED = "/api/dataset-worker/jobs?limit=50&cursor=<random>"


def fill_jobs(database: Path, count: int) -> float:
    """Insert one preparation and `count` jobs no worker would claim; returns seconds taken."""
    open_database(sqlite_url(database)).dispose()  # create the schema
    began = time.perf_counter()
    with sqlite3.connect(database) as db:
        db.execute(
            "INSERT INTO storages (id, name, created_at, updated_at, type, path, config,"
            " client_config) VALUES (1, 'bench-src', datetime('now'), datetime('now'), 'local',"
            " '/nonexistent', '{}', '{}')"
        )
        db.execute(
            "INSERT INTO preparations (id, name, created_at, updated_at, delete_after_export,"
            " max_size, piece_size, min_piece_size, no_inline, no_dag) VALUES (1, 'bench',"
            " datetime('now'), datetime('now'), 0, 1000000, 2097152, 1048576, 0, 0)"
        )
        db.execute(
            "INSERT INTO source_attachments (id, preparation_id, storage_id) VALUES (1, 1, 1)"
        )
        db.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)"
            " INSERT INTO jobs (type, state, error_message, error_stack_trace, attachment_id,"
            " created_at, started_at, finished_at)"
            " SELECT CASE x % 3 WHEN 0 THEN 'scan' WHEN 1 THEN 'pack' ELSE 'daggen' END,"
            " CASE x % 4 WHEN 0 THEN 'error' WHEN 1 THEN 'paused' ELSE 'complete' END,"
            " CASE x % 4 WHEN 0 THEN 'failed: example error' ELSE '' END, '', 1,"
            " datetime('now'), datetime('now'), datetime('now') FROM n",
            (count,),
        )
    return time.perf_counter() - began


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(
    state_dir: Path, database: Path, port: int, processes: int
) -> subprocess.Popen[bytes]:
    env = {**os.environ, ENV_ADMIN_TOKEN: TOKEN}
    command = [
        sys.executable, "-m", "dataset_worker", "--state-dir", str(state_dir),
        "--database-url", sqlite_url(database), "serve", "--port", str(port), "--no-access-log", "--workers", str(processes),
    ]  # fmt: skip
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


async def one_client(
    port: int, path: str, until: float, latencies: list[float], errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    fixed = request_bytes(path)
    try:
        while time.perf_counter() < until:
            request = fixed if "<random>" not in path else request_bytes(random_cursor(path))
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode())
    finally:
        writer.close()


def request_bytes(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    ).encode()


def random_cursor(path: str) -> str:
    return path.replace("<random>", str(random.randint(1000, MAX_CURSOR)))


async def load(port: int, path: str, clients: int, seconds: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(
        *(one_client(port, path, until, latencies, errors) for _ in range(clients))
    )
    return latencies, errors


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by the server: `pid` and its descendants, except the
    log pump and the dataset worker it runs (the worker idles; its cost is not the API's)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/cmdline", "rb") as cmdline:
                if b"dataset_worker.manager.logpump" in cmdline.read():
                    continue
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pending.extend(children.get(current, []))
    return total


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--server-processes", type=int, default=1, help="serve --workers N")
    args = parser.parse_args()
    global MAX_CURSOR
    MAX_CURSOR = max(args.jobs, 1001)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as folder:
        state_dir = Path(folder) / "state"
        state_dir.mkdir()
        database = state_dir / "dataset-worker.db"
        took = fill_jobs(database, args.jobs)
        print(f"{args.jobs:,} jobs inserted in {took:.1f}s")
        port = free_port()
        server = start_server(state_dir, database, port, args.server_processes)
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            started = httpx.post(f"{base}/api/dataset-worker/start", json={}, headers=auth)
            assert started.status_code == 200, started.text
            print(
                f"worker running (pid {started.json()['pid']}); {args.clients} clients;"
                f" {args.server_processes} server process(es)"
            )
            print(
                f"{'endpoint':50} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>9}  goal"
            )
            for path in (*ENDPOINTS, UNCACHED):
                asyncio.run(load(port, path, args.clients, 1.0))  # warm-up
                cpu_before = cpu_seconds(server.pid)
                latencies, errors = asyncio.run(load(port, path, args.clients, args.seconds))
                cpu = (cpu_seconds(server.pid) - cpu_before) / max(len(latencies), 1)
                if errors:
                    raise SystemExit(f"{path}: {len(errors)} failed requests, e.g. {errors[0]}")
                p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
                verdict = "ok" if p99 < GOAL_P99_SECONDS else "MISSED (p99 < 50 ms)"
                if path == UNCACHED:
                    verdict = "(no goal: cache misses)"
                print(
                    f"{path:50} {len(latencies):9,} {len(latencies) / args.seconds:8.0f}"
                    f" {p50 * 1000:8.1f} {p99 * 1000:8.1f} {cpu * 1000:9.2f}  {verdict}"
                )
        finally:
            httpx.post(f"{base}/api/dataset-worker/stop", headers=auth, timeout=60)
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
