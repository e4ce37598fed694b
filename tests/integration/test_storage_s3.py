"""The S3 storage against real S3 servers (moto and rclone): listing order, range reads, change
checks, multipart output, publish by copy, and recovery of leftover uploads."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dataset_worker.storage import LocalSource, SourceChangedError, SourceEntry, StorageError
from dataset_worker.storage.s3 import S3Output, S3Source
from dataset_worker.storage.s3client import s3_api
from dataset_worker.storage.s3config import S3Config, parse_s3_url
from dataset_worker.storage.select import open_output, open_source
from tests.support.s3servers import S3Server

MIB = 1 << 20

# Names whose S3 key order differs from their name order ("a/" sorts after "a-b" and "a.txt").
TREE = {
    "a-b": b"dash file",
    "a.txt": b"dot file",
    "a/x.bin": b"x" * 1000,
    "a/a!/deep.txt": b"deep",
    "a/a/deeper.txt": b"deeper",
    "a/empty.dat": b"",
    "b c/space.txt": b"space",
    "caf\u00e9/\u00e9t\u00e9.txt": b"summer",
    "z": b"last",
    "a!": b"bang",
    "a+/inner": b"plus dir",
}


def write_tree(root: Path, tree: dict[str, bytes]) -> None:
    """Write `tree` (relative path -> bytes) below `root`."""
    for rel, data in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def shape(entries: list[SourceEntry]) -> list[tuple[str, bool, int]]:
    """What must match between storages: order, path, kind, size."""
    return [(e.path, e.is_dir, e.size) for e in entries]


def listing(source: S3Source | LocalSource) -> tuple[list[SourceEntry], list[str]]:
    """All entries of `source` and the paths it reported as skipped."""
    errors: list[str] = []
    entries = list(source.walk(lambda path, exc: errors.append(path)))
    return entries, errors


def test_listing_order_matches_the_local_scan(s3_server: S3Server, tmp_path: Path) -> None:
    write_tree(tmp_path, TREE)
    bucket = s3_server.new_bucket()
    s3_server.put_tree(bucket, tmp_path, "data/")
    local, _ = listing(LocalSource(tmp_path))
    for page_size in (1000, 2, 1):  # tiny pages: the reorder buffer works across pages
        source = S3Source(
            s3_api(S3Config.from_mapping(s3_server.config())),
            parse_s3_url(f"s3://{bucket}/data"),
            page_size=page_size,
        )
        remote, errors = listing(source)
        assert shape(remote) == shape(local)
        assert errors == []
    files = [e for e in remote if not e.is_dir]
    assert all(e.hash for e in files if e.size)  # ETags recorded for the change check
    assert {e.path: e.size for e in files}["a/empty.dat"] == 0


def test_ranged_reads_return_the_exact_bytes(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    data = os.urandom(3 * MIB + 12345)
    s3_server.client.put_object(Bucket=bucket, Key="big.bin", Body=data)
    s3_server.client.put_object(Bucket=bucket, Key="empty", Body=b"")
    source = open_source("s3", f"s3://{bucket}", s3_server.config())
    entries = {e.path: e for e in listing(source)[0]}  # type: ignore[arg-type]
    big = entries["big.bin"]
    for offset in (0, 1, MIB, len(data) - 1):
        stream = source.open_range(
            "big.bin", offset, size=big.size, mtime_ns=big.mtime_ns, hash=big.hash
        )
        try:
            got = read_all(stream)
        finally:
            stream.close()
        assert got == data[offset:]
    empty = entries["empty"]
    stream = source.open_range("empty", 0, size=0, mtime_ns=empty.mtime_ns, hash=empty.hash)
    assert read_all(stream) == b""


def read_all(stream: object) -> bytes:
    """Everything `stream.readinto` gives until it returns 0."""
    out = bytearray()
    buffer = memoryview(bytearray(256 * 1024))
    while got := stream.readinto(buffer):  # type: ignore[attr-defined]
        out += buffer[:got]
    return bytes(out)


def test_a_changed_or_deleted_object_fails_the_read(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client.put_object(Bucket=bucket, Key="d/f.txt", Body=b"version one")
    source = open_source("s3", f"s3://{bucket}", s3_server.config())
    entry = next(e for e in listing(source)[0] if e.path == "d/f.txt")  # type: ignore[arg-type]
    s3_server.client.put_object(Bucket=bucket, Key="d/f.txt", Body=b"version two")
    with pytest.raises(SourceChangedError, match=f"source changed: s3://{bucket}/d/f.txt"):
        source.open_range("d/f.txt", 0, size=entry.size, mtime_ns=entry.mtime_ns, hash=entry.hash)
    s3_server.client.delete_object(Bucket=bucket, Key="d/f.txt")
    with pytest.raises(SourceChangedError, match=f"source changed: s3://{bucket}/d/f.txt"):
        source.open_range("d/f.txt", 0, size=entry.size, mtime_ns=entry.mtime_ns, hash=entry.hash)


def test_a_listing_error_raises_instead_of_ending_early(s3_server: S3Server) -> None:
    source = open_source("s3", "s3://dw-no-such-bucket-here/x", s3_server.config(max_attempts=2))
    with pytest.raises(StorageError, match="listing s3://dw-no-such-bucket-here/x/ failed"):
        listing(source)  # type: ignore[arg-type]


def _output(server: S3Server, bucket: str, **kwargs: int) -> S3Output:
    config = S3Config.from_mapping(server.config(part_size=5 * MIB))
    return S3Output(
        s3_api(config), parse_s3_url(f"s3://{bucket}/cars"), part_size=5 * MIB, **kwargs
    )


def test_multipart_upload_publishes_by_copy_and_leaves_nothing_behind(
    s3_server: S3Server,
) -> None:
    bucket = s3_server.new_bucket()
    data = os.urandom(12 * MIB + 7)
    for kwargs in (
        {},
        {"copy_limit": 6 * MIB, "copy_part_size": 5 * MIB},
    ):  # single, multipart copy
        output = _output(s3_server, bucket, **kwargs)
        temp = output.create_temp("pack7")
        for start in range(0, len(data), 300_000):
            temp.stream.write(data[start : start + 300_000])
        temp.pad_to(len(data) + 100)
        assert temp.size == len(data) + 100
        assert temp.publish("piece.car") == "piece.car"
        temp.discard()  # a no-op once published
        body = s3_server.client.get_object(Bucket=bucket, Key="cars/piece.car")["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(data + bytes(100)).digest()
        assert output.exists("piece.car") == len(data) + 100
        assert s3_server.keys(bucket) == ["cars/piece.car"]
        assert s3_server.uploads(bucket) == []
    output.remove("piece.car")
    assert output.exists("piece.car") is None


def test_discard_aborts_the_upload(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    output = _output(s3_server, bucket)
    temp = output.create_temp("pack8")
    temp.stream.write(os.urandom(6 * MIB))  # one part sent
    temp.discard()
    assert s3_server.uploads(bucket) == []
    assert s3_server.keys(bucket) == []


def test_recovery_removes_leftovers_of_a_killed_run(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    output = _output(s3_server, bucket)
    killed = output.create_temp("pack9")  # a run killed mid-upload: never discarded
    killed.stream.write(os.urandom(6 * MIB))
    killed.stream.flush()
    s3_server.client.put_object(Bucket=bucket, Key="cars/.dw-pack9-old.car.part", Body=b"x")
    s3_server.client.put_object(Bucket=bucket, Key="cars/.dw-pack90-other.car.part", Body=b"x")
    s3_server.client.put_object(Bucket=bucket, Key="cars/kept.car", Body=b"x")
    other = output.create_temp("pack91")  # another job's upload stays
    assert output.remove_temps("pack9") >= 2
    assert sorted(s3_server.keys(bucket)) == ["cars/.dw-pack90-other.car.part", "cars/kept.car"]
    assert s3_server.uploads(bucket) == [other.key]
    other.discard()


def test_config_refuses_secrets_and_unknown_keys() -> None:
    with pytest.raises(StorageError, match='"secret_access_key" holds a secret'):
        S3Config.from_mapping({"secret_access_key": "x"})
    with pytest.raises(StorageError, match='unknown S3 config key "endpont"'):
        S3Config.from_mapping({"endpont": "http://x"})
    with pytest.raises(StorageError, match='"endpoint" must be an http'):
        S3Config.from_mapping({"endpoint": "ftp://x"})
    with pytest.raises(StorageError, match="must start with s3://"):
        open_output("s3", "bucket/x", {})
    with pytest.raises(StorageError, match='storage type "ftp" is not supported'):
        open_source("ftp", "x", {})
