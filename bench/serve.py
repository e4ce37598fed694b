"""Benchmark: the content provider serving a non-inline piece (a local CAR file of about 1 GiB).

A source file of --mib MiB is packed by the real pack job into one CAR (a no-inline preparation,
SQLite), then `dataset-worker content-provider` serves it in a subprocess. Three measurements:

1. GET /piece throughput with `curl -o /dev/null`, against `python -m http.server` serving the
   same CAR file from the page cache: the provider as it runs by default (4 MiB reads) and with
   --sendfile, each with its CPU time per GB. Goal: provider (default) / http.server >= 1.0.
   Also the provider with --verify-blocks (every block hashed while served): its cost is the
   ratio line "verify-blocks / default".
2. `dataset-worker fetch-piece --connections 5` (which checks the piece CID) against one `curl`
   download of the same piece, and against `curl` followed by `dataset-worker commp` (the same
   work: download and piece CID check). Goal: fetch-piece speed / curl speed >= 0.8.
3. 16 clients at once, each asking GET /piece for a different --range-mib range in a loop on its
   keep-alive connection: time to first byte (status line) per request. Goal: p99 < 50 ms.
4. The same source prepared inline (no CAR file; own SQLite database and provider process):
   GET /piece rebuilt from the source file and car_blocks, every leaf hashed against its CID,
   against the provider serving the CAR file. The bytes are compared once. Goal: >= 0.5.

Runs are interleaved and medians reported; the machine is shared, so figures move run to run.
Everything (client, servers, hashing) shares this machine's cores.

Usage: .venv/bin/python bench/serve.py [--mib 1024] [--runs 5] [--requests 20] [--range-mib 4]
       [--inline-only] [--only fetch]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.support.jobs import make_local_preparation, scan_and_pack
from tests.support.ports import free_port

from dataset_worker.config import sqlite_url
from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import open_database
from dataset_worker.db.models import Car

MIB = 1 << 20
CLIENTS = 16
GOAL_SERVE = 1.0
GOAL_FETCH = 0.8
GOAL_TTFB = 0.050
GOAL_INLINE = 0.5


def make_inline(folder: Path) -> str:
    """Prepare the same source inline in a database of its own; returns its URL."""
    url = sqlite_url(folder / "inline.db")
    db = open_database(url)
    try:
        rows = make_local_preparation(db, "inline", folder / "source", None)
        runs = scan_and_pack(db, rows.attachment_id)
        if [run.state.value for run in runs] != ["complete"]:
            raise SystemExit(f"inline packing failed: {[run.error for run in runs]}")
    finally:
        db.dispose()
    return url


def make_piece(folder: Path, mib: int) -> tuple[str, Path, str]:
    """Pack a random file of `mib` MiB (less 1 MiB, so the CAR is about `mib` MiB) into one CAR.

    Returns (database URL, CAR path, piece CID).
    """
    source, output = folder / "source", folder / "output"
    source.mkdir()
    with open(source / "data.bin", "wb") as out:
        left = (mib - 1) * MIB
        while left:
            step = min(left, 64 * MIB)
            out.write(os.urandom(step))
            left -= step
    url = sqlite_url(folder / "bench.db")
    db = open_database(url)
    try:
        rows = make_local_preparation(db, "bench", source, output, no_inline=True)
        runs = scan_and_pack(db, rows.attachment_id)
        if [run.state.value for run in runs] != ["complete"]:
            raise SystemExit(f"packing failed: {[run.error for run in runs]}")
        with db.read() as session:
            car = session.query(Car).one()
            cid, path = cid_to_str(car.piece_cid), output / car.storage_path
    finally:
        db.dispose()
    return url, path, cid  # the source stays: the inline preparation reads it


def start(command: list[str], port: int, probe: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{command[:4]} did not start")


def provider(url: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "dataset_worker", "--database-url", url, "content-provider",
        "--port", str(port), *extra,
    ]  # fmt: skip
    return start(command, port, "/healthz")


def curl_speed(url: str) -> float:
    """Bytes per second of one `curl -o /dev/null` download."""
    result = subprocess.run(
        ["curl", "-sSf", "-o", "/dev/null", "-w", "%{speed_download}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout)


def timed(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


async def ttfb_client(
    port: int, path: str, size: int, span: int, requests: int, samples: list[float]
) -> None:
    """One keep-alive client asking for `requests` random ranges; records time to first byte."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(requests):
            start = random.randrange(0, size - span)
            request = (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Range: bytes={start}-{start + span - 1}\r\n\r\n"
            ).encode()
            began = time.perf_counter()
            writer.write(request)
            first = await reader.readexactly(1)
            samples.append(time.perf_counter() - began)
            head = first + await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 206"):
                raise SystemExit(f"unexpected reply: {head[:40]!r}")
            await reader.readexactly(span)
    finally:
        writer.close()


async def ttfb(port: int, path: str, size: int, span: int, requests: int) -> list[float]:
    samples: list[float] = []
    await asyncio.gather(
        *(ttfb_client(port, path, size, span, requests, samples) for _ in range(CLIENTS))
    )
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def verdict(ok: bool, goal: str) -> str:
    return "ok" if ok else f"MISSED ({goal})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="CAR size (MiB)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="range requests per client")
    parser.add_argument("--range-mib", type=int, default=4)
    parser.add_argument("--inline-only", action="store_true", help="only measurement 4")
    parser.add_argument(
        "--only", choices=["fetch"], help="only measurement 2 (fetch-piece against curl)"
    )
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as name:
        folder = Path(name)
        began = time.perf_counter()
        url, car, cid = make_piece(folder, args.mib)
        size = car.stat().st_size
        print(f"piece {cid}: {size:,} bytes, packed in {time.perf_counter() - began:.1f}s")
        if args.only == "fetch":
            run_fetch_only(args, folder, car, cid, size)
            return
        inline_url = make_inline(folder)
        ports = {"read": free_port(), "sendfile": free_port(), "http.server": free_port()}
        ports["inline"] = free_port()
        ports["verify"] = free_port()
        http_server = [sys.executable, "-m", "http.server", str(ports["http.server"])]
        http_server += ["--bind", "127.0.0.1", "--directory", str(car.parent)]
        servers = [
            provider(url, ports["read"]),
            provider(url, ports["sendfile"], "--sendfile"),
            start(http_server, ports["http.server"], "/" + car.name),
            provider(inline_url, ports["inline"]),
            provider(url, ports["verify"], "--verify-blocks"),
        ]
        pids = {name: server.pid for name, server in zip(ports, servers, strict=True)}
        try:
            if not args.inline_only:
                run_all(args, folder, car, cid, size, ports, pids)
            run_inline(args, folder, car, cid, size, ports, pids)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_all(
    args: argparse.Namespace,
    folder: Path,
    car: Path,
    cid: str,
    size: int,
    ports: dict[str, int],
    pids: dict[str, int],
) -> None:
    urls = {
        "read": f"http://127.0.0.1:{ports['read']}/piece/{cid}",
        "sendfile": f"http://127.0.0.1:{ports['sendfile']}/piece/{cid}",
        "http.server": f"http://127.0.0.1:{ports['http.server']}/{car.name}",
        "verify": f"http://127.0.0.1:{ports['verify']}/piece/{cid}",
    }
    labels = {
        "read": "provider (default)",
        "sendfile": "provider --sendfile",
        "http.server": "python -m http.server",
        "verify": "provider --verify-blocks",
    }
    with open(car, "rb") as warm:  # into the page cache, for every contender alike
        while warm.read(16 * MIB):
            pass
    speeds: dict[str, list[float]] = {name: [] for name in urls}
    cpu: dict[str, float] = dict.fromkeys(urls, 0.0)
    for _ in range(args.runs):
        for name, url in urls.items():
            before = cpu_seconds(pids[name])
            speeds[name].append(curl_speed(url))
            cpu[name] += cpu_seconds(pids[name]) - before
    print(f"\n1. GET the whole piece with curl, median of {args.runs} (MB/s = 10^6 B/s)")
    base = statistics.median(speeds["http.server"])
    for name, values in speeds.items():
        speed = statistics.median(values)
        per_gb = cpu[name] / (size * args.runs / 1e9)
        print(
            f"   {labels[name]:24} {speed / 1e6:8.0f} MB/s   ratio {speed / base:5.2f}"
            f"   server CPU {per_gb:5.2f} s/GB"
        )
    ratio = statistics.median(speeds["read"]) / base
    print(
        f"   goal provider / http.server >= {GOAL_SERVE}: {verdict(ratio >= GOAL_SERVE, 'ratio')}"
    )
    checked = statistics.median(speeds["verify"]) / statistics.median(speeds["read"])
    print(f"   verify-blocks / default: {checked:5.2f} (the cost of hashing every block)")

    run_fetch(args, folder, cid, size, ports["read"])

    span = args.range_mib * MIB
    path = f"/piece/{cid}"
    asyncio.run(ttfb(ports["read"], path, size, span, 2))  # warm-up
    samples = asyncio.run(ttfb(ports["read"], path, size, span, args.requests))
    p50, p99 = statistics.median(samples), percentile(samples, 0.99)
    print(f"\n3. {CLIENTS} clients at once, {len(samples)} requests of {args.range_mib} MiB ranges")
    print(f"   time to first byte: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"max {max(samples) * 1000:.1f} ms; goal p99 < 50 ms: "
          f"{verdict(p99 < GOAL_TTFB, 'p99')}")  # fmt: skip


def run_fetch(args: argparse.Namespace, folder: Path, cid: str, size: int, port: int) -> None:
    """Measurement 2: fetch-piece (download + piece CID check) against curl, and curl + commp."""
    fetch_url = f"http://127.0.0.1:{port}"
    url = f"{fetch_url}/piece/{cid}"
    out = folder / "fetched.car"
    fetch_cmd = [
        sys.executable, "-m", "dataset_worker", "fetch-piece", fetch_url, cid, "-o", str(out),
        "--connections", "5",
    ]  # fmt: skip
    curl_cmd = ["curl", "-sSf", "-o", str(folder / "curl.car"), url]
    commp_cmd = [sys.executable, "-m", "dataset_worker", "commp", str(folder / "curl.car")]
    times: dict[str, list[float]] = {"fetch": [], "curl": [], "commp": []}
    runs = max(3, args.runs // 2)
    for _ in range(runs):
        times["fetch"].append(timed(fetch_cmd))
        times["curl"].append(timed(curl_cmd))
        times["commp"].append(timed(commp_cmd))
        out.unlink()
    fetch, curl = statistics.median(times["fetch"]), statistics.median(times["curl"])
    curl_commp = statistics.median(
        [a + b for a, b in zip(times["curl"], times["commp"], strict=True)]
    )
    print(f"\n2. download of the piece, median of {runs} (wall time, process start included)")
    print(
        f"   fetch-piece, 5 connections, CID checked  {fetch:6.2f}s  {size / fetch / 1e6:6.0f} MB/s"
    )
    print(
        f"   curl, 1 connection, no check             {curl:6.2f}s  {size / curl / 1e6:6.0f} MB/s"
    )
    print(
        f"   curl, then dataset-worker commp          {curl_commp:6.2f}s  {size / curl_commp / 1e6:6.0f} MB/s"
    )
    ratio = curl / fetch
    print(f"   fetch-piece / curl:          {ratio:5.2f}  goal >= {GOAL_FETCH}: "
          f"{verdict(ratio >= GOAL_FETCH, 'ratio')}")  # fmt: skip
    print(
        f"   fetch-piece / (curl+commp):  {curl_commp / fetch:5.2f}  (the same work on both sides)"
    )


def run_fetch_only(args: argparse.Namespace, folder: Path, car: Path, cid: str, size: int) -> None:
    """Measurement 2 alone, against a provider of its own (--only fetch)."""
    with open(car, "rb") as warm:  # into the page cache, as in the full run
        while warm.read(16 * MIB):
            pass
    port = free_port()
    server = provider(sqlite_url(folder / "bench.db"), port)
    try:
        run_fetch(args, folder, cid, size, port)
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_inline(
    args: argparse.Namespace,
    folder: Path,
    car: Path,
    cid: str,
    size: int,
    ports: dict[str, int],
    pids: dict[str, int],
) -> None:
    """Measurement 4: the inline piece rebuilt from the source against the CAR file."""
    urls = {name: f"http://127.0.0.1:{ports[name]}/piece/{cid}" for name in ("read", "inline")}
    for path in (car, folder / "source" / "data.bin"):  # both in the page cache alike
        with open(path, "rb") as warm:
            while warm.read(16 * MIB):
                pass
    copy = folder / "inline.car"
    subprocess.run(["curl", "-sSf", "-o", str(copy), urls["inline"]], check=True)
    same = subprocess.run(["cmp", "-s", str(copy), str(car)]).returncode == 0
    copy.unlink()
    speeds: dict[str, list[float]] = {name: [] for name in urls}
    cpu = dict.fromkeys(urls, 0.0)
    for _ in range(args.runs):
        for name, url in urls.items():
            before = cpu_seconds(pids[name])
            speeds[name].append(curl_speed(url))
            cpu[name] += cpu_seconds(pids[name]) - before
    print(f"\n4. inline piece (rebuilt from the source), curl, median of {args.runs}")
    print(f"   bytes identical to the CAR file: {same}")
    base = statistics.median(speeds["read"])
    labels = {"read": "provider, CAR file", "inline": "provider, inline"}
    for name, values in speeds.items():
        speed = statistics.median(values)
        per_gb = cpu[name] / (size * args.runs / 1e9)
        print(
            f"   {labels[name]:24} {speed / 1e6:8.0f} MB/s   ratio {speed / base:5.2f}"
            f"   server CPU {per_gb:5.2f} s/GB"
        )
    ratio = statistics.median(speeds["inline"]) / base
    ok = same and ratio >= GOAL_INLINE
    print(f"   goal inline / CAR file >= {GOAL_INLINE}: {verdict(ok, 'ratio and bytes')}")


if __name__ == "__main__":
    main()
