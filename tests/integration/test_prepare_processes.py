"""`prepare --concurrency 2` packs in two processes (cli/prepare_helpers.py): the same pieces as
one process, and Ctrl-C on `prepare` alone stops its helper too, with every job released."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dataset_worker.db import Database
from dataset_worker.db.models import Car, Job, JobState, JobType, Worker
from tests.support.wait import wait_until

MIB = 1 << 20


def _tree(root: Path, files: int, size: int) -> None:
    """Sparse files with distinct first bytes: one pack job each at max size 100 MB."""
    root.mkdir(parents=True)
    for index in range(files):
        with (root / f"f{index:02d}.bin").open("wb") as stream:
            stream.write(f"file {index}".encode())
            stream.truncate(size)


def _command(tmp_path: Path, database_url: str, source: Path, concurrency: int) -> list[str]:
    return [
        sys.executable, "-m", "dataset_worker", "--state-dir", str(tmp_path / "state"),
        "--database-url", database_url, "prepare", str(source), "--max-size", "100MB",
        "--output", str(tmp_path / f"cars{concurrency}"), "--name", f"p{concurrency}",
        "--concurrency", str(concurrency),
    ]  # fmt: skip


def _log(tmp_path: Path, name: str) -> str:
    path = tmp_path / "state" / "logs" / f"prepare-{name}.log"
    return path.read_text() if path.exists() else ""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_processes_make_the_pieces_of_one(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    _tree(source, 6, 8 * MIB)
    one = subprocess.run(
        _command(tmp_path, database_url, source, 1), capture_output=True, timeout=300
    )
    assert one.returncode == 0, one.stderr.decode()[-3000:]
    with db.read() as session:
        single = sorted(session.scalars(select(Car.piece_cid)))
    two = subprocess.run(
        _command(tmp_path, database_url, source, 2), capture_output=True, timeout=300
    )
    assert two.returncode == 0, two.stderr.decode()[-3000:]
    assert "prepare helper started" in _log(tmp_path, "p2")
    assert "prepare helper started" not in _log(tmp_path, "p1")
    with db.read() as session:
        both = sorted(session.scalars(select(Car.piece_cid)))
        states = set(session.scalars(select(Job.state)))
        workers = session.scalar(select(func.count()).select_from(Worker))
    # Each preparation made the same data and DAG pieces: every piece CID twice.
    assert both == sorted(single * 2)
    assert states == {JobState.COMPLETE}
    assert workers == 0  # every worker thread, the helper's too, deleted its row on exit


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_stops_the_helper_and_releases_every_job(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    _tree(source, 12, 96 * MIB)
    with (tmp_path / "out.log").open("w") as out:
        process = subprocess.Popen(
            _command(tmp_path, database_url, source, 2), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            wait_until(
                lambda: "prepare helper started" in _log(tmp_path, "p2"),
                300,
                "the helper process to start",
            )
            process.send_signal(signal.SIGINT)  # prepare alone, not its process group
            code = process.wait(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
    assert code == 130, (tmp_path / "out.log").read_text()[-3000:]
    with db.read() as session:
        processing = session.scalar(
            select(func.count()).where(Job.type == JobType.PACK, Job.state == JobState.PROCESSING)
        )
        workers = session.scalar(select(func.count()).select_from(Worker))
    assert processing == 0  # released by both processes, not left held
    assert workers == 0  # the helper stopped too: its thread deleted its row
