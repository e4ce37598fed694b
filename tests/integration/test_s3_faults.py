"""A bad network between the worker and S3: connection resets in the middle of a GET body,
stalls past the read timeout and 503 SlowDown answers, injected by a proxy. After each, the
real job bodies produce exactly the pieces of an undisturbed run, nothing lost or duplicated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dataset_worker.db import Database
from dataset_worker.db.models import JobState, JobType
from tests.support.faultproxy import Fault, Request, fault_proxy
from tests.support.jobs import add_job, run_job, write_files
from tests.support.s3servers import S3Server
from tests.support.storages import StorageSpec, make_preparation, prepared, run_all

MIB = 1 << 20
MAX_SIZE = 2_000_000
TREE: dict[str, int | bytes] = {
    "big.bin": 4 * MIB + 5,
    "d/one.bin": 900_000,
    "d/two.bin": 300_000,
    "small.txt": b"small",
}


def _object_reads(request: Request) -> bool:
    return request.is_object_read


def _any(request: Request) -> bool:
    return True


FAULTS = {
    "reset": [Fault("reset", 3, _object_reads, after=100_000)],
    "stall": [Fault("stall", 2, _object_reads, after=100_000, seconds=3.0)],
    "slowdown": [Fault("slowdown", 5, _any), Fault("slowdown", 3, _object_reads)],
}


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Database]:
    """SQLite only: the faults are between the job and S3, and what a failed attempt does to
    the job's row is tested on both databases by the queue's own tests."""
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_faults_leave_the_pieces_identical(
    db: Database, tmp_path: Path, s3_server: S3Server, kind: str
) -> None:
    write_files(tmp_path / "src", TREE)
    bucket = s3_server.new_bucket()
    s3_server.put_tree(bucket, tmp_path / "src", "src/")

    def run(name: str, endpoint: str) -> int:
        config = s3_server.config(read_timeout=1.0, part_size=5 * MIB)
        config["endpoint"] = endpoint
        attachment = make_preparation(
            db,
            name,
            StorageSpec("s3", f"s3://{bucket}/src", config),
            StorageSpec("s3", f"s3://{bucket}/{name}", config),
            max_size=MAX_SIZE,
        )
        runs = run_all(db, attachment)
        assert [r.error for r in runs if r.state is not JobState.COMPLETE] == []
        return attachment

    reference = prepared(db, run("calm", s3_server.endpoint), s3=s3_server)
    with fault_proxy(s3_server.endpoint) as proxy:
        faults = [
            Fault(f.kind, f.remaining, f.match, after=f.after, seconds=f.seconds)
            for f in FAULTS[kind]
        ]
        for fault in faults:
            proxy.arm(fault)
        disturbed = prepared(db, run("stormy", proxy.endpoint), s3=s3_server)
        assert proxy.injected[kind] == sum(f.remaining for f in FAULTS[kind])
    assert disturbed == reference
    assert len(disturbed.pieces) == len(reference.pieces)
    assert [k for k in s3_server.keys(bucket) if ".dw-" in k] == []
    assert s3_server.uploads(bucket) == []


def _listing(request: Request) -> bool:
    return request.method == "GET" and "list-type=2" in request.path


def test_a_listing_that_keeps_failing_fails_the_scan(
    db: Database, tmp_path: Path, s3_server: S3Server
) -> None:
    write_files(tmp_path / "src", {"a/b/c.txt": b"c", "a/d.txt": b"d"})
    bucket = s3_server.new_bucket()
    s3_server.put_tree(bucket, tmp_path / "src")
    (tmp_path / "out").mkdir()
    with fault_proxy(s3_server.endpoint) as proxy:
        config = s3_server.config(max_attempts=3)
        config["endpoint"] = proxy.endpoint
        attachment = make_preparation(
            db,
            "broken-listing",
            StorageSpec("s3", f"s3://{bucket}", config),
            StorageSpec("local", str(tmp_path / "out")),
            max_size=MAX_SIZE,
        )
        proxy.arm(Fault("slowdown", 1000, _listing))
        scan = run_job(db, add_job(db, attachment, JobType.SCAN))
        assert proxy.injected["slowdown"] == 3  # every attempt failed, then it gave up
    assert scan.state is JobState.ERROR
    assert f"listing s3://{bucket}/ failed" in str(scan.error)
    assert "SlowDown" in str(scan.error)
