"""kill -9 between publishing `<pieceCID>.car` and the transaction that records it: the intent
committed before the publish (`car_publications`) lets the job's next run, or `prep delete`,
remove the unrecorded file, and never a file that a `cars` row of any preparation uses.

The last test SIGKILLs a real process running the real pack job once its CAR is published
(kill_after_publish.py). The others simulate the kill in process, to reach more cases quickly:
the recording step is replaced by one that raises an exception nothing in the job catches, so
the job stops right after the publish with no clean-up of its own, as a killed process would;
the job is then released as the reaper would release it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dataset_worker.db import Database, publications
from dataset_worker.db.models import Car, CarPublication, Job, JobState, JobType
from dataset_worker.db.queue import release_job
from dataset_worker.prep import Conflict
from dataset_worker.prep.delete import delete_preparation
from dataset_worker.storage.local import LocalOutput, LocalTempOutput
from dataset_worker.worker.jobs.daggen import job as daggen_job
from dataset_worker.worker.jobs.pack import job as pack_job
from tests.support.jobs import (
    add_job,
    make_local_preparation,
    new_worker,
    run_job,
    run_ready_jobs,
    write_files,
)
from tests.support.s3servers import S3Server
from tests.support.sshd import SshServer
from tests.support.storages import StorageSpec, make_preparation
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]

FILES: dict[str, int | bytes] = {"a.bin": 40_000, "sub/b.bin": 70_000}


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no job code handles it."""


def _killed_after_publish(*_args: Any, **_kwargs: Any) -> None:
    raise Killed


def _scanned(db: Database, tmp_path: Path, name: str, output: Path) -> int:
    """A preparation of FILES writing to `output`, scanned; its single ready pack job's id."""
    source = tmp_path / f"{name}-source"
    write_files(source, FILES)
    rows = make_local_preparation(db, name, source, output, no_dag=True)
    return _scan(db, rows.attachment_id)


def _scan(db: Database, attachment_id: int) -> int:
    """Scan the attachment; its single ready pack job's id."""
    scan = run_job(db, add_job(db, attachment_id, JobType.SCAN))
    assert scan.state is JobState.COMPLETE
    with db.read() as session:
        jobs = list(
            session.scalars(
                select(Job.id).where(Job.attachment_id == attachment_id, Job.type == JobType.PACK)
            )
        )
    assert len(jobs) == 1
    return jobs[0]


def _kill_pack(db: Database, job_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the pack job until just after its publish, then 'kill' it and release the job."""
    worker = new_worker(db)
    monkeypatch.setattr(pack_job, "record_or_unpublish", _killed_after_publish)
    with pytest.raises(Killed):
        run_job(db, job_id, worker_id=worker)
    monkeypatch.undo()
    assert release_job(db, job_id, worker)  # what the reaper does for a dead worker


def _count(db: Database, model: type[Car] | type[CarPublication]) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _cars(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.car"))


def test_a_killed_publish_leaves_an_intent_and_the_rerun_records_the_file(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    job_id = _scanned(db, tmp_path, "killed", output)
    _kill_pack(db, job_id, monkeypatch)
    published = _cars(output)
    assert len(published) == 1 and _count(db, Car) == 0
    with db.read() as session:
        intent = session.execute(select(CarPublication.job_id, CarPublication.storage_path)).one()
    assert tuple(intent) == (job_id, published[0])

    assert run_job(db, job_id).state is JobState.COMPLETE
    with db.read() as session:
        car = session.execute(select(Car.storage_path, Car.file_size, Car.job_id)).one()
    assert (car.storage_path, car.job_id) == (published[0], job_id)
    assert (output / car.storage_path).stat().st_size == car.file_size
    assert _cars(output) == published
    assert _count(db, CarPublication) == 0


@pytest.mark.parametrize("delete_cars", [True, False])
def test_deleting_the_preparation_removes_the_unrecorded_car(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delete_cars: bool
) -> None:
    output = tmp_path / "out"
    _kill_pack(db, _scanned(db, tmp_path, "killed", output), monkeypatch)
    assert len(_cars(output)) == 1

    report = delete_preparation(db, "killed", delete_cars=delete_cars)
    assert report.removed.unrecorded_car_files == 1
    assert _cars(output) == []
    assert _count(db, CarPublication) == 0


@pytest.mark.parametrize(
    "clean_up",
    [
        lambda db, job_id: delete_preparation(db, "killed", delete_cars=True),
        lambda db, job_id: run_job(db, job_id),
    ],
    ids=["delete", "rerun"],
)
def test_a_file_another_preparation_records_is_never_removed(
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_up: Callable[[Database, int], object],
) -> None:
    # Two preparations of the same files write to one folder through two storages rows: both
    # make the same `<pieceCID>.car`. The first records it; the second is killed after its
    # publish, so its intent names a file the first's `cars` row uses.
    output = tmp_path / "shared"
    recorded_job = _scanned(db, tmp_path, "recorded", output)
    killed_job = _scanned(db, tmp_path, "killed", output)
    assert run_job(db, recorded_job).state is JobState.COMPLETE
    recorded = _cars(output)
    _kill_pack(db, killed_job, monkeypatch)
    assert _cars(output) == recorded and _count(db, CarPublication) == 1

    clean_up(db, killed_job)
    assert _count(db, CarPublication) == 0
    with db.read() as session:
        path, size = session.execute(
            select(Car.storage_path, Car.file_size).where(Car.job_id == recorded_job)
        ).one()
    assert _cars(output) == recorded == [path]
    assert (output / path).stat().st_size == size


def test_a_normal_run_leaves_no_intent(db: Database, tmp_path: Path) -> None:
    output = tmp_path / "out"
    _scanned(db, tmp_path, "plain", output)
    assert [r.state for r in run_ready_jobs(db, JobType.PACK)] == [JobState.COMPLETE]
    assert _count(db, Car) == 1 and _count(db, CarPublication) == 0


def test_an_unreachable_output_refuses_the_delete_and_keeps_the_intent(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    _kill_pack(db, _scanned(db, tmp_path, "killed", output), monkeypatch)
    [published] = _cars(output)

    def unreachable(_self: LocalOutput, _path: str) -> None:
        raise OSError("the disk is gone")

    monkeypatch.setattr(LocalOutput, "remove", unreachable)
    with pytest.raises(Conflict, match=f"{published}.*the disk is gone"):
        delete_preparation(db, "killed")
    assert _count(db, CarPublication) == 1 and _cars(output) == [published]

    monkeypatch.undo()
    assert delete_preparation(db, "killed").removed.unrecorded_car_files == 1
    assert _cars(output) == [] and _count(db, CarPublication) == 0


def _keys(server: S3Server, bucket: str) -> list[str]:
    listed = server.client.list_objects_v2(Bucket=bucket, Prefix="cars/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.mark.parametrize("clean_up", ["rerun", "delete"])
def test_s3_a_killed_publish_is_recovered(
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moto_server: S3Server,
    clean_up: str,
) -> None:
    # On S3 the publish is a server-side copy of the uploaded temporary key to the final key.
    bucket = moto_server.new_bucket()
    write_files(tmp_path / "src", FILES)
    attachment = make_preparation(
        db,
        "killed",
        StorageSpec("local", str(tmp_path / "src")),
        StorageSpec("s3", f"s3://{bucket}/cars", moto_server.config()),
        max_size=2_000_000,
    )
    job_id = _scan(db, attachment)
    _kill_pack(db, job_id, monkeypatch)
    [published] = _keys(moto_server, bucket)
    assert published.endswith(".car") and _count(db, Car) == 0

    if clean_up == "rerun":
        assert run_job(db, job_id).state is JobState.COMPLETE
        with db.read() as session:
            path = session.execute(select(Car.storage_path)).scalar_one()
        assert _keys(moto_server, bucket) == [published] == [f"cars/{path}"]
    else:
        assert delete_preparation(db, "killed").removed.unrecorded_car_files == 1
        assert _keys(moto_server, bucket) == []
    assert _count(db, CarPublication) == 0


def test_the_rerun_removes_the_unrecorded_car_before_anything_else(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rerun cannot pack the same bytes again (a source file changed since the scan), so
    # only the recovery at its start can remove the killed run's file.
    output = tmp_path / "out"
    job_id = _scanned(db, tmp_path, "killed", output)
    _kill_pack(db, job_id, monkeypatch)
    assert len(_cars(output)) == 1
    (tmp_path / "killed-source" / "a.bin").write_bytes(b"changed since the scan")

    rerun = run_job(db, job_id)
    assert rerun.state is JobState.ERROR, rerun
    assert _cars(output) == [] and _count(db, Car) == 0 and _count(db, CarPublication) == 0


@pytest.mark.parametrize("clean_up", ["rerun", "delete"])
def test_a_worker_sigkilled_after_its_publish_leaves_nothing_unrecorded(
    db: Database, database_url: str, tmp_path: Path, clean_up: str
) -> None:
    # A real process runs the real pack job and is SIGKILLed once the CAR has its final name.
    output = tmp_path / "out"
    job_id = _scanned(db, tmp_path, "killed", output)
    worker, marker = new_worker(db), tmp_path / "published"
    command = [sys.executable, "-m", "tests.integration.kill_after_publish"]
    with subprocess.Popen(
        [*command, database_url, str(job_id), worker, str(marker)], cwd=ROOT
    ) as proc:
        try:
            wait_until(marker.exists, timeout=60, what="the CAR to be published")
        finally:
            proc.send_signal(signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    [published] = _cars(output)
    assert _count(db, Car) == 0 and _count(db, CarPublication) == 1
    assert release_job(db, job_id, worker)  # what the reaper does for the dead worker

    if clean_up == "rerun":
        assert run_job(db, job_id).state is JobState.COMPLETE
        with db.read() as session:
            path, size = session.execute(select(Car.storage_path, Car.file_size)).one()
        assert _cars(output) == [published] == [path]
        assert (output / path).stat().st_size == size
    else:
        assert delete_preparation(db, "killed").removed.unrecorded_car_files == 1
        assert _cars(output) == []
    assert _count(db, CarPublication) == 0


def test_a_failed_recording_keeps_the_file_while_the_jobs_new_run_announced_it(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker the reaper gave up on lives on: the job's new run (elsewhere) has announced the
    # same name when the old run's recording fails (the job is no longer its own). The old run
    # may clear only its own intent; the new run's intent keeps the file.
    output = tmp_path / "out"
    job_id = _scanned(db, tmp_path, "zombie", output)
    new_run: list[int] = []

    def recording_fails(session: Any, ctx: Any, *_args: Any) -> None:
        with db.read() as read:
            storage_id, path = read.execute(
                select(CarPublication.storage_id, CarPublication.storage_path)
            ).one()
        new_run.append(publications.announce(db, ctx.job_id, storage_id, path))
        raise RuntimeError("job is no longer this worker's")

    monkeypatch.setattr(pack_job, "record_pack", recording_fails)
    assert run_job(db, job_id).state is JobState.ERROR
    assert len(_cars(output)) == 1
    with db.read() as session:
        assert list(session.scalars(select(CarPublication.id))) == new_run


@pytest.mark.parametrize("clean_up", ["rerun", "delete"])
def test_a_daggen_killed_after_its_publish_is_recovered(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_up: str
) -> None:
    output = tmp_path / "out"
    write_files(tmp_path / "src", FILES)
    rows = make_local_preparation(db, "dag", tmp_path / "src", output)
    _scan(db, rows.attachment_id)
    assert [r.state for r in run_ready_jobs(db, JobType.PACK)] == [JobState.COMPLETE]
    data_car = _cars(output)
    daggen = add_job(db, rows.attachment_id, JobType.DAGGEN)
    worker = new_worker(db)
    monkeypatch.setattr(daggen_job, "record_or_unpublish", _killed_after_publish)
    with pytest.raises(Killed):
        run_job(db, daggen, worker_id=worker)
    monkeypatch.undo()
    assert release_job(db, daggen, worker)
    [dag_car] = sorted(set(_cars(output)) - set(data_car))
    assert _count(db, CarPublication) == 1

    if clean_up == "rerun":
        assert run_job(db, daggen).state is JobState.COMPLETE
        with db.read() as session:
            paths = set(session.scalars(select(Car.storage_path)))
        assert paths == {*data_car, dag_car} == set(_cars(output))
    else:
        report = delete_preparation(db, "dag")
        assert report.removed.unrecorded_car_files == 1
        assert _cars(output) == data_car  # the recorded data piece stays without --delete-cars
    assert _count(db, CarPublication) == 0


def test_a_failed_publish_clears_its_intent(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    job_id = _scanned(db, tmp_path, "failing", output)

    def full_disk(_self: LocalTempOutput, _name: str) -> str:
        raise OSError("no space left on device")

    monkeypatch.setattr(LocalTempOutput, "publish", full_disk)
    run = run_job(db, job_id)
    assert run.state is JobState.ERROR and "no space left" in str(run.error)
    assert _cars(output) == [] and _count(db, CarPublication) == 0


@pytest.mark.parametrize("clean_up", ["rerun", "delete"])
def test_sftp_a_killed_publish_is_recovered(
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ssh_server: SshServer,
    clean_up: str,
) -> None:
    # Over SFTP the publish is a posix-rename of the uploaded temporary file.
    output = ssh_server.home / f"cars-{uuid.uuid4().hex[:12]}"
    output.mkdir()
    write_files(tmp_path / "src", FILES)
    attachment = make_preparation(
        db,
        "killed",
        StorageSpec("local", str(tmp_path / "src")),
        StorageSpec("sftp", ssh_server.url(output), ssh_server.config()),
        max_size=2_000_000,
    )
    job_id = _scan(db, attachment)
    _kill_pack(db, job_id, monkeypatch)
    assert len(_cars(output)) == 1 and _count(db, CarPublication) == 1

    if clean_up == "rerun":
        # A source file changed since the scan: only the recovery can remove the file.
        (tmp_path / "src" / "a.bin").write_bytes(b"changed since the scan")
        assert run_job(db, job_id).state is JobState.ERROR
    else:
        assert delete_preparation(db, "killed").removed.unrecorded_car_files == 1
    assert _cars(output) == [] and _count(db, CarPublication) == 0
    shutil.rmtree(output)
