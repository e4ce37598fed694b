"""The real scan, pack and daggen job bodies over S3: the same tree in a bucket (moto, rclone)
and in a folder gives the same CAR bytes, piece CIDs and root CID, with CARs written to a local
folder and to a bucket."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.models import File, Job, JobState, JobType
from dataset_worker.storage.select import open_output
from tests.support.jobs import add_job, run_job, run_ready_jobs, write_files
from tests.support.s3servers import S3Server
from tests.support.storages import Prepared, StorageSpec, make_preparation, prepared, run_all

MIB = 1 << 20
MAX_SIZE = 2_000_000  # several pack jobs, and files split across them
TREE: dict[str, int | bytes] = {
    "big.bin": 5 * MIB + 123,  # split into ranges over three pack jobs
    "a-b": 1000,
    "a.txt": b"dot",
    "a/x.bin": 700_000,
    "a/a!/deep.txt": b"deep",
    "a/empty.dat": b"",
    "b c/space.txt": 3000,
    "caf\u00e9/\u00e9t\u00e9.txt": b"summer",
    "z/last.bin": 1_500_000,
}


def _run(db: Database, name: str, source: StorageSpec, output: StorageSpec) -> int:
    attachment = make_preparation(db, name, source, output, max_size=MAX_SIZE)
    runs = run_all(db, attachment)
    assert [r.error for r in runs if r.state is not JobState.COMPLETE] == []
    assert len(runs) >= 4  # at least three pack jobs and the daggen
    return attachment


@pytest.fixture
def local_reference(db: Database, tmp_path: Path) -> Prepared:
    """The tree prepared from a local folder into a local folder."""
    write_files(tmp_path / "src", TREE)
    out = tmp_path / "out-local"
    out.mkdir()
    attachment = _run(
        db, "local", StorageSpec("local", str(tmp_path / "src")), StorageSpec("local", str(out))
    )
    return prepared(db, attachment, folder=out)


def test_s3_source_gives_the_same_pieces_as_a_folder(
    db: Database, tmp_path: Path, s3_server: S3Server, local_reference: Prepared
) -> None:
    bucket = s3_server.new_bucket()
    s3_server.put_tree(bucket, tmp_path / "src", "dataset/")
    source = StorageSpec("s3", f"s3://{bucket}/dataset", s3_server.config())

    out = tmp_path / "out-s3src"
    out.mkdir()
    attachment = _run(db, "s3-to-local", source, StorageSpec("local", str(out)))
    assert prepared(db, attachment, folder=out) == local_reference
    with db.read() as session:
        hashes = session.scalars(
            select(File.hash).where(File.attachment_id == attachment, File.size > 0)
        ).all()
    assert hashes and all(hashes)  # every object's ETag was recorded for the change check

    output = StorageSpec("s3", f"s3://{bucket}/cars", s3_server.config(part_size=5 * MIB))
    attachment = _run(db, "s3-to-s3", source, output)
    assert prepared(db, attachment, s3=s3_server) == local_reference
    assert not [k for k in s3_server.keys(bucket, "cars/") if not k.endswith(".car")]
    assert [k for k in s3_server.keys(bucket, "cars/") if ".dw-" in k] == []
    assert s3_server.uploads(bucket) == []


def test_a_source_object_changed_after_the_scan_fails_the_pack(
    db: Database, tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client.put_object(Bucket=bucket, Key="d/f.bin", Body=b"one" * 1000)
    out = tmp_path / "out"
    out.mkdir()
    attachment = make_preparation(
        db,
        "changed",
        StorageSpec("s3", f"s3://{bucket}", s3_server.config()),
        StorageSpec("local", str(out)),
        max_size=MAX_SIZE,
    )
    from dataset_worker.db.models import JobType
    from tests.support.jobs import add_job, run_job, run_ready_jobs

    assert run_job(db, add_job(db, attachment, JobType.SCAN)).state is JobState.COMPLETE
    s3_server.client.put_object(Bucket=bucket, Key="d/f.bin", Body=b"two" * 1000)
    [pack] = run_ready_jobs(db, JobType.PACK, attachment_id=attachment)
    assert pack.state is JobState.ERROR
    assert f"source changed: s3://{bucket}/d/f.bin" in str(pack.error)
    assert list(out.iterdir()) == []  # the temporary CAR was removed


def test_a_rerun_cleans_up_after_a_killed_pack(
    db: Database, tmp_path: Path, s3_server: S3Server
) -> None:
    write_files(tmp_path / "src", {"a.bin": 400_000, "b.txt": b"b"})
    bucket = s3_server.new_bucket()
    s3_server.put_tree(bucket, tmp_path / "src", "in/")
    config = s3_server.config(part_size=5 * MIB)
    attachment = make_preparation(
        db,
        "killed",
        StorageSpec("s3", f"s3://{bucket}/in", config),
        StorageSpec("s3", f"s3://{bucket}/out", config),
        max_size=MAX_SIZE,
    )
    assert run_job(db, add_job(db, attachment, JobType.SCAN)).state is JobState.COMPLETE
    with db.read() as session:
        [pack_id] = session.scalars(
            select(Job.id).where(Job.attachment_id == attachment, Job.type == JobType.PACK)
        ).all()
    # What a SIGKILL mid-upload leaves: an open multipart upload and a completed temp object.
    output = open_output("s3", f"s3://{bucket}/out", config)
    leftover = output.create_temp(f"pack{pack_id}")
    leftover.stream.write(bytes(6 * MIB))  # one part uploaded
    s3_server.client.put_object(Bucket=bucket, Key=f"out/.dw-pack{pack_id}-x.car.part", Body=b"x")
    assert len(s3_server.uploads(bucket)) == 1

    [pack] = run_ready_jobs(db, JobType.PACK, attachment_id=attachment)
    assert pack.state is JobState.COMPLETE, pack.error
    assert s3_server.uploads(bucket) == []
    keys = s3_server.keys(bucket, "out/")
    assert len(keys) == 1 and keys[0].endswith(".car") and ".dw-" not in keys[0]
