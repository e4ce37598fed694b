"""A source that changes after its scan is never a dead end: a rescan re-plans the work.

Between the scan and the packs one file is deleted, one modified (same size, new mtime), one
grown and one added; the packs of the changed files fail. `rescan_preparation` queues the scan
again, which records the new versions, rebuilds the unfinished pack jobs and drops the vanished
file, leaving the completed pieces as they are; then the packs and the daggen complete, and the
files extracted from the CARs under the root CID are exactly the current tree. Then a file that
is already packed vanishes: after another rescan the DAG no longer holds it. Local folders and S3
(moto), SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.models import Car, Directory, File, Job, JobState, JobType
from dataset_worker.prep.control import start_daggen
from dataset_worker.prep.rescan import rescan_preparation
from dataset_worker.retrieve.carindex import BlockIndex
from dataset_worker.retrieve.extract import extract_tree
from tests.support.jobs import JobRun, pseudo_random_bytes, run_ready_jobs
from tests.support.s3servers import S3Server
from tests.support.storages import StorageSpec, make_preparation

MAX_SIZE = 700_000  # two or three files per pack job: changed and unchanged files share jobs
SIZE = 200_000


@dataclass
class Source:
    """The source tree, wherever it is stored, and what it holds now."""

    spec: StorageSpec
    put: Callable[[str, bytes], None]
    remove: Callable[[str], None]
    touch: Callable[[str, bytes], None]  # new bytes of the same size, another mtime
    files: dict[str, bytes]

    def write(self, path: str, data: bytes) -> None:
        self.put(path, data)
        self.files[path] = data

    def delete(self, path: str) -> None:
        self.remove(path)
        del self.files[path]

    def modify(self, path: str, data: bytes) -> None:
        assert len(data) == len(self.files[path])
        self.touch(path, data)
        self.files[path] = data


def _local_source(root: Path) -> Source:
    root.mkdir()

    def put(path: str, data: bytes) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)

    def touch(path: str, data: bytes) -> None:
        before = (root / path).stat().st_mtime_ns
        put(path, data)
        os.utime(root / path, ns=(before + 5 * 10**9, before + 5 * 10**9))

    return Source(StorageSpec("local", str(root)), put, lambda p: (root / p).unlink(), touch, {})


def _s3_source(server: S3Server) -> Source:
    bucket = server.new_bucket()

    def put(path: str, data: bytes) -> None:
        server.client.put_object(Bucket=bucket, Key=f"data/{path}", Body=data)

    def remove(path: str) -> None:
        server.client.delete_object(Bucket=bucket, Key=f"data/{path}")

    return Source(StorageSpec("s3", f"s3://{bucket}/data", server.config()), put, remove, put, {})


@pytest.fixture(params=["local", "s3"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Source:
    if request.param == "local":
        return _local_source(tmp_path / "src")
    return _s3_source(request.getfixturevalue("moto_server"))


def _data(name: str, size: int = SIZE, seed: int = 0) -> bytes:
    return pseudo_random_bytes(size, seed=zlib.crc32(f"{name}:{seed}".encode()))


def _extracted(db: Database, attachment_id: int, out: Path, dest: Path) -> dict[str, bytes]:
    with db.read() as session:
        root = session.scalar(
            select(Directory.cid).where(
                Directory.attachment_id == attachment_id, Directory.parent_id.is_(None)
            )
        )
        dag = session.scalar(
            select(Car.root_cid)
            .where(Car.attachment_id == attachment_id, Car.piece_type == "dag")
            .order_by(Car.id.desc())
            .limit(1)
        )
    assert root is not None and dag == root  # the newest DAG piece has the current root
    with BlockIndex() as index:
        for car in sorted(out.glob("*.car")):
            index.add_car(car)
        extract_tree(index, root, dest)
    return {
        str(path.relative_to(dest)): path.read_bytes() for path in dest.rglob("*") if path.is_file()
    }


def _run(db: Database, job_type: JobType, attachment_id: int) -> list[JobRun]:
    return run_ready_jobs(db, job_type, attachment_id=attachment_id)


def _all_complete(runs: list[JobRun]) -> None:
    assert [str(r.error) for r in runs if r.state is not JobState.COMPLETE] == []


def test_a_rescan_replans_changed_grown_vanished_and_new_files(
    db: Database, tmp_path: Path, source: Source
) -> None:
    for index in range(12):
        source.write(f"d{index % 3}/f{index:02}.bin", _data(f"f{index}"))
    source.write("top.txt", b"top level")
    out = tmp_path / "cars"
    out.mkdir()
    name = f"rescan-{source.spec.type}"
    attachment = make_preparation(
        db, name, source.spec, StorageSpec("local", str(out)), max_size=MAX_SIZE
    )
    rescan_preparation(db, name)  # the first scan: the same queueing as start-scan
    _all_complete(_run(db, JobType.SCAN, attachment))

    source.delete("d1/f01.bin")
    source.modify("d0/f03.bin", _data("f3", seed=1))
    source.write("d2/f05.bin", _data("f5") + b"grown")
    source.write("d1/new.bin", _data("new", 300_000))
    packs = _run(db, JobType.PACK, attachment)
    failed = [r for r in packs if r.state is JobState.ERROR]
    assert len(failed) >= 2 and any(r.state is JobState.COMPLETE for r in packs)
    assert all("source" in str(r.error) and "changed" in str(r.error) for r in failed)
    with db.read() as session:
        complete_cars = set(session.scalars(select(Car.piece_cid)).all())

    rescan_preparation(db, name)
    _all_complete(_run(db, JobType.SCAN, attachment))
    _all_complete(_run(db, JobType.PACK, attachment))
    start_daggen(db, name)
    _all_complete(_run(db, JobType.DAGGEN, attachment))
    with db.read() as session:
        states = session.scalars(select(Job.state).where(Job.attachment_id == attachment)).all()
        pieces = set(session.scalars(select(Car.piece_cid)).all())
        paths = session.scalars(
            select(File.path).where(File.attachment_id == attachment, File.cid.is_not(None))
        ).all()
    assert set(states) == {JobState.COMPLETE}  # the failed jobs were rebuilt, none left in error
    assert complete_cars <= pieces  # completed pieces are left as they are
    assert "d1/f01.bin" not in paths
    assert _extracted(db, attachment, out, tmp_path / "x1") == source.files

    # A file already packed into a piece vanishes, another one changes: the DAG follows.
    source.delete("d2/f02.bin")
    source.modify("top.txt", b"TOP LEVEL")
    rescan_preparation(db, name)
    _all_complete(_run(db, JobType.SCAN, attachment))
    _all_complete(_run(db, JobType.PACK, attachment))
    start_daggen(db, name)
    _all_complete(_run(db, JobType.DAGGEN, attachment))
    with db.read() as session:
        assert pieces <= set(session.scalars(select(Car.piece_cid)).all())
    extracted = _extracted(db, attachment, out, tmp_path / "x2")
    assert extracted == source.files, sorted(set(extracted) ^ set(source.files))


def test_auto_rescan_catches_a_pack_that_failed_while_the_scan_ran(
    db: Database, tmp_path: Path
) -> None:
    """The pack cannot queue a scan that is running; the scan's completion queues itself again,
    once, and the preparation still ends with the current tree."""
    from dataset_worker.db.models import Preparation
    from dataset_worker.worker.jobs.chain import after_scan_complete
    from dataset_worker.worker.jobs.scan.job import run_scan
    from dataset_worker.worker.runtime.context import JobContext
    from tests.support.jobs import run_job

    source = _local_source(tmp_path / "src")
    for index in range(6):
        source.write(f"f{index}.bin", _data(f"a{index}"))
    out = tmp_path / "cars"
    out.mkdir()
    attachment = make_preparation(
        db, "meanwhile", source.spec, StorageSpec("local", str(out)), max_size=MAX_SIZE
    )
    with db.write() as session:
        prep = session.scalars(select(Preparation).where(Preparation.name == "meanwhile")).one()
        prep.auto_rescan = True
    scan_id = rescan_preparation(db, "meanwhile").id

    def scan_then_change(ctx: JobContext) -> None:
        run_scan(ctx)  # listed the old version …
        source.modify("f2.bin", _data("a2", seed=9))  # … which changes now, and its pack fails
        failed = [r for r in _run(db, JobType.PACK, attachment) if r.state is JobState.ERROR]
        assert failed and "prep rescan" in str(failed[0].error)

    assert run_job(db, scan_id, handler=scan_then_change).state is JobState.COMPLETE
    db.run_write(lambda session: after_scan_complete(session, scan_id))  # the runtime's hook call
    with db.read() as session:
        assert session.scalar(select(Job.state).where(Job.id == scan_id)) is JobState.READY

    _all_complete(_run(db, JobType.SCAN, attachment))
    db.run_write(lambda session: after_scan_complete(session, scan_id))  # nothing failed since
    with db.read() as session:
        assert session.scalar(select(Job.state).where(Job.id == scan_id)) is JobState.COMPLETE
    _all_complete(_run(db, JobType.PACK, attachment))
    start_daggen(db, "meanwhile")
    _all_complete(_run(db, JobType.DAGGEN, attachment))
    assert _extracted(db, attachment, out, tmp_path / "x") == source.files
