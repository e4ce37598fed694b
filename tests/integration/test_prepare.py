"""`dataset-worker prepare` as a subprocess on SQLite and PostgreSQL: the whole flow in one go, the
same pieces as the step-by-step commands, and Ctrl-C then a rerun that resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import Car, Job, JobState, JobType, Preparation
from tests.support.jobs import write_files
from tests.support.manifest import META_ARGS, file_entries, sha256_hex, validate_super_manifest
from tests.support.wait import wait_until

MIB = 1 << 20
TREE: dict[str, int | bytes] = {
    "big.bin": 3 * MIB + 12345,  # split over several 1 MB pieces
    "empty": b"",
    "docs/readme.txt": b"read me\n",
    "docs/ünï/数据.bin": 200_000,
    "docs/deeper/still/x.json": b"{}",
}
PieceRow = tuple[str, bytes, int, bytes, int]
# Without COLUMNS the CLI prints tables 240 wide when piped: whole CIDs.
ENV = {key: value for key, value in os.environ.items() if key != "COLUMNS"}


def _cli(
    tmp_path: Path, database_url: str, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataset_worker", "--state-dir", str(tmp_path / "state"),
         "--database-url", database_url, *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout, check=False, env=ENV,
    )  # fmt: skip


def _pieces(db: Database, name: str) -> list[PieceRow]:
    with db.read() as session:
        prep_id = session.scalar(select(Preparation.id).where(Preparation.name == name))
        rows = session.execute(
            select(Car.piece_type, Car.piece_cid, Car.piece_size, Car.root_cid, Car.file_size)
            .where(Car.preparation_id == prep_id)
            .order_by(Car.id)
        )
        return sorted((str(t), cid, size, root, car) for t, cid, size, root, car in rows)


def test_prepare_makes_the_pieces_of_the_step_by_step_flow(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "My Data!"
    write_files(source, TREE)
    manifest = tmp_path / "manifest.json"

    done = _cli(tmp_path, database_url, "prepare", str(source), "--max-size", "1000000",
                "--concurrency", "2", "--manifest", str(manifest), *META_ARGS)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'Pieces of "My-Data"' in done.stdout
    # The default output is in the state dir, not next to the working directory.
    assert (tmp_path / "state" / "cars" / "My-Data").is_dir()
    assert not (tmp_path / "My-Data-cars").exists()

    step = tmp_path / "step-cars"
    for args in (
        ("prep", "create", "--name", "step", "--source", str(source), "--output", str(step),
         "--max-size", "1000000", "--no-auto"),
        ("prep", "start-scan", "step"),
        ("run", "--exit-on-complete", "--min-interval", "50ms", "--max-interval", "100ms"),
        ("prep", "start-daggen", "step"),
        ("run", "--exit-on-complete", "--min-interval", "50ms", "--max-interval", "100ms"),
    ):  # fmt: skip
        result = _cli(tmp_path, database_url, *args)
        assert result.returncode == 0, result.stdout + result.stderr
    prepared = _pieces(db, "My-Data")
    assert len(prepared) >= 5 and prepared == _pieces(db, "step")
    assert [kind for kind, *_ in prepared].count("dag") == 1

    document = json.loads(manifest.read_text(encoding="utf-8"))
    validate_super_manifest(document)
    entries = dict(file_entries(document["contents"]))
    assert set(entries) == set(TREE)
    assert all(entry["hash"] == sha256_hex(source / path) for path, entry in entries.items())
    # The pieces table: one line per piece, with its piece CID and payload CID.
    table = [line for line in done.stdout.splitlines() if "baga" in line]
    assert len(table) == len(prepared)
    for _kind, piece_cid, _size, root_cid, _car in prepared:
        assert any(cid_to_str(piece_cid) in line and cid_to_str(root_cid) in line for line in table)


def test_a_name_in_use_for_another_source_is_refused(database_url: str, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    write_files(first, {"a.txt": b"a"})
    write_files(second, {"b.txt": b"b"})
    assert _cli(tmp_path, database_url, "prepare", str(first), "--name", "data").returncode == 0
    again = _cli(tmp_path, database_url, "prepare", str(second), "--name", "data")
    assert again.returncode == 1
    assert f'preparation "data" already exists for source {first}, not {second}' in again.stderr
    resumed = _cli(tmp_path, database_url, "prepare", str(first), "--name", "data")
    assert resumed.returncode == 0, resumed.stderr  # everything done: nothing to redo


def _sparse_tree(root: Path, files: int, size: int) -> None:
    root.mkdir(parents=True)
    for index in range(files):
        with (root / f"f{index:02d}.bin").open("wb") as stream:
            stream.write(f"file {index}".encode())
            stream.truncate(size)


def _pack_jobs(db: Database) -> list[Job]:
    with db.read() as session:
        return list(session.scalars(select(Job).where(Job.type == JobType.PACK).order_by(Job.id)))


def _complete_packs(db: Database) -> dict[int, datetime | None]:
    return {j.id: j.finished_at for j in _pack_jobs(db) if j.state is JobState.COMPLETE}


def _cars(db: Database) -> dict[int | None, tuple[Any, ...]]:
    with db.read() as session:
        rows = session.execute(select(Car.job_id, Car.id, Car.piece_cid, Car.created_at))
        return {job: (car, cid, created) for job, car, cid, created in rows}


@pytest.mark.timeout(600)
def test_interrupted_prepare_resumes_without_redoing_finished_pieces(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "sparse"
    _sparse_tree(source, 12, 96 * MIB)  # 12 jobs of one file each (max size 100 MB)
    command = [
        sys.executable, "-m", "dataset_worker", "--state-dir", str(tmp_path / "state"),
        "--database-url", database_url, "prepare", str(source), "--max-size", "100MB",
        "--concurrency", "1",
    ]  # fmt: skip
    with (tmp_path / "first.log").open("w") as log:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: _complete_packs(db), 300, "a first complete pack job")
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    output = (tmp_path / "first.log").read_text()
    assert code == 130, output
    assert "Interrupted: run the same command again to resume." in output

    jobs = _pack_jobs(db)
    finished = _complete_packs(db)
    assert 0 < len(finished) < len(jobs), "interrupt came too late to test a resume"
    assert not [j.id for j in jobs if j.state is JobState.PROCESSING]  # released, not left held
    cars_before = _cars(db)
    assert set(finished) <= set(cars_before)

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr

    assert all(j.state is JobState.COMPLETE for j in _pack_jobs(db))
    assert {job: at for job, at in _complete_packs(db).items() if job in finished} == finished
    cars_after = _cars(db)
    assert {job: cars_after[job] for job in finished} == {job: cars_before[job] for job in finished}
    with db.read() as session:
        daggen = session.scalars(select(Job.state).where(Job.type == JobType.DAGGEN)).all()
    assert daggen == [JobState.COMPLETE]
    assert os.listdir(tmp_path / "state" / "cars" / "sparse")
