"""The runtime driving the real scan, pack and daggen bodies through `dataset-worker run`."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dataset_worker.db import Database
from dataset_worker.db.models import Car, Job, JobState, JobType, PieceType
from dataset_worker.prep import (
    CreatePreparationRequest,
    create_preparation,
    start_daggen,
    start_scan,
)
from tests.integration.worker_support import Spawn, spawner
from tests.support.wait import wait_until

FAST = ["--min-interval", "50ms", "--max-interval", "200ms"]
QUICK_RECOVERY = ["--heartbeat-interval", "200ms", "--stale-after", "1s"]
BIG = 256 << 20  # a sparse file: packing it takes long enough to interrupt


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator[Spawn]:
    with spawner(tmp_path, database_url) as start:
        yield start


def prepare(db: Database, tmp_path: Path, files: dict[str, int]) -> Path:
    source, output = tmp_path / "source", tmp_path / "out"
    for name, size in files.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            f.write(name.encode() * (min(size, 4096) // max(len(name), 1)))
            f.truncate(size)
    request = CreatePreparationRequest.model_validate(
        {"name": "real", "source": str(source), "output": str(output), "noAuto": True}
    )
    create_preparation(db, request)
    start_scan(db, "real")
    return output


def writing(output: Path) -> bool:
    """True once a pack has created its temporary CAR in the output folder."""
    return output.is_dir() and any(output.iterdir())


def jobs_by_type(db: Database, job_type: JobType) -> list[Job]:
    with db.read() as session:
        return list(session.scalars(select(Job).where(Job.type == job_type).order_by(Job.id)))


def cars(db: Database) -> list[Car]:
    with db.read() as session:
        return list(session.scalars(select(Car).order_by(Car.id)))


def test_scan_pack_and_daggen_run_to_completion(spawn: Spawn, db: Database, tmp_path: Path) -> None:
    output = prepare(db, tmp_path, {"a.txt": 1000, "dir/b.bin": 70_000, "dir/empty": 0})
    worker = spawn(None, "--exit-on-complete", *FAST)
    assert worker.wait(60) == 0, worker.output()
    packs = jobs_by_type(db, JobType.PACK)
    assert packs and {j.state for j in packs} == {JobState.COMPLETE}
    assert jobs_by_type(db, JobType.SCAN)[0].state == JobState.COMPLETE

    start_daggen(db, "real")
    worker = spawn(None, "--exit-on-complete", *FAST)
    assert worker.wait(60) == 0, worker.output()
    assert jobs_by_type(db, JobType.DAGGEN)[0].state == JobState.COMPLETE
    pieces = cars(db)
    assert [c.piece_type for c in pieces].count(PieceType.DAG) == 1
    assert len(pieces) == len(packs) + 1
    assert sorted(p.name for p in output.iterdir()) == sorted(c.storage_path for c in pieces)


@pytest.mark.slow
def test_sigterm_mid_pack_leaves_the_job_ready_and_nothing_behind(
    spawn: Spawn, db: Database, tmp_path: Path
) -> None:
    output = prepare(db, tmp_path, {"big.bin": BIG})
    scanner = spawn(None, "--exit-on-complete", "--no-enable-pack", *FAST)
    assert scanner.wait(60) == 0, scanner.output()
    (pack,) = jobs_by_type(db, JobType.PACK)

    worker = spawn(None, *FAST)
    wait_until(lambda: writing(output), 30, "pack writing its CAR")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 130, worker.output()
    (after,) = jobs_by_type(db, JobType.PACK)
    assert (after.state, after.worker_id) == (JobState.READY, None), worker.output()
    assert cars(db) == []
    assert list(output.iterdir()) == []  # no CAR, no temporary file
    assert re.search(rf"job\.released .*job={pack.id} ", worker.output())


@pytest.mark.slow
def test_kill_9_mid_pack_then_recovery_completes_once(
    spawn: Spawn, db: Database, tmp_path: Path
) -> None:
    output = prepare(db, tmp_path, {"big.bin": BIG, "small.txt": 10})
    scanner = spawn(None, "--exit-on-complete", "--no-enable-pack", *FAST)
    assert scanner.wait(60) == 0, scanner.output()
    packs = jobs_by_type(db, JobType.PACK)

    victim = spawn(None, *FAST, *QUICK_RECOVERY)
    wait_until(lambda: writing(output), 30, "pack writing its CAR")
    victim.signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL

    # No --exit-on-complete: the dead worker's job only becomes claimable once it is stale.
    rescuer = spawn(None, *FAST, *QUICK_RECOVERY)
    wait_until(
        lambda: {j.state for j in jobs_by_type(db, JobType.PACK)} == {JobState.COMPLETE},
        90,
        "every pack job complete",
    )
    assert "reaper.reaped" in rescuer.output()
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait(30) == 130, rescuer.output()
    pieces = cars(db)
    with db.read() as session:
        per_job = session.execute(select(Car.job_id, func.count()).group_by(Car.job_id)).all()
    assert {job_id for job_id, _ in per_job} == {j.id for j in packs}
    assert {count for _, count in per_job} == {1}  # no duplicate cars row
    assert sorted(p.name for p in output.iterdir()) == sorted(c.storage_path for c in pieces)
