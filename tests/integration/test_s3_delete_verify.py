"""Verify and delete --delete-cars on a preparation whose source and output are S3 (moto and
rclone): verify re-reads every CAR from the bucket (and --deep rebuilds every file and compares
it with the source objects), a damaged CAR object is reported, and deleting with its CARs
removes exactly the preparation's CAR objects."""

from __future__ import annotations

from pathlib import Path

from dataset_worker.db import Database
from dataset_worker.db.models import JobState
from dataset_worker.prep.delete import delete_preparation
from dataset_worker.verify.preparation import verify_preparation
from tests.support.jobs import write_files
from tests.support.s3servers import S3Server
from tests.support.storages import StorageSpec, make_preparation, run_all

MIB = 1 << 20
TREE: dict[str, int | bytes] = {"big.bin": 2 * MIB + 5, "a/b.txt": b"bee", "a/c.bin": 300_000}


def _prepare(db: Database, tmp_path: Path, s3: S3Server, name: str) -> tuple[str, list[str]]:
    """A preparation from s3://bucket/in to s3://bucket/cars; the bucket and its CAR keys."""
    write_files(tmp_path / "tree", TREE)
    bucket = s3.new_bucket()
    s3.put_tree(bucket, tmp_path / "tree", "in/")
    attachment = make_preparation(
        db,
        name,
        StorageSpec("s3", f"s3://{bucket}/in", s3.config()),
        StorageSpec("s3", f"s3://{bucket}/cars", s3.config(part_size=5 * MIB)),
        max_size=1_000_000,
    )
    runs = run_all(db, attachment)
    assert [r.error for r in runs if r.state is not JobState.COMPLETE] == []
    cars = s3.keys(bucket, "cars/")
    assert len(cars) >= 4 and all(k.endswith(".car") for k in cars)  # 3+ data pieces, 1 DAG
    return bucket, cars


def test_verify_rereads_the_cars_from_s3(db: Database, tmp_path: Path, s3_server: S3Server) -> None:
    bucket, cars = _prepare(db, tmp_path, s3_server, "remote")
    report = verify_preparation(db, "remote")
    assert report.problems == []
    assert sorted(p.car_path or "" for p in report.pieces) == sorted(
        f"s3://{bucket}/{key}" for key in cars
    )
    sizes = {f"s3://{bucket}/{k}": s3_server.client.head_object(Bucket=bucket, Key=k) for k in cars}
    assert all(p.bytes_read == sizes[p.car_path or ""]["ContentLength"] for p in report.pieces)
    assert all(p.blocks > 0 for p in report.pieces)

    deep = verify_preparation(db, "remote", deep=True)
    assert deep.problems == []
    assert deep.files == len(TREE) and deep.file_bytes == sum(
        v if isinstance(v, int) else len(v) for v in TREE.values()
    )

    # One flipped byte in the first block of a data CAR: the bytes come from the bucket.
    data = [p for p in report.pieces if p.piece_type == "data"]
    biggest = (max(data, key=lambda p: p.bytes_read).car_path or "").split("/", 3)[3]
    body = bytearray(s3_server.client.get_object(Bucket=bucket, Key=biggest)["Body"].read())
    body[2000] ^= 0xFF
    s3_server.client.put_object(Bucket=bucket, Key=biggest, Body=bytes(body))
    damaged = verify_preparation(db, "remote")
    kinds = {p.kind for p in damaged.problems}
    assert kinds == {"block-hash", "piece-cid"}, damaged.problems
    assert {p.car_path for p in damaged.problems} == {f"s3://{bucket}/{biggest}"}

    s3_server.client.delete_object(Bucket=bucket, Key=biggest)
    missing = verify_preparation(db, "remote")
    assert [p.kind for p in missing.problems] == ["car-unreadable"]
    assert "does not exist" in missing.problems[0].message


def test_delete_with_cars_removes_the_s3_objects(
    db: Database, tmp_path: Path, s3_server: S3Server
) -> None:
    bucket, cars = _prepare(db, tmp_path, s3_server, "gone")
    s3_server.client.put_object(Bucket=bucket, Key="cars/not-ours.car", Body=b"keep me")
    report = delete_preparation(db, "gone", delete_cars=True)
    assert report.removed.car_files == len(cars)
    assert s3_server.keys(bucket, "cars/") == ["cars/not-ours.car"]  # only what it wrote went
    assert sorted(s3_server.keys(bucket, "in/")) == sorted(f"in/{rel}" for rel in TREE)
