"""Many worker processes over many real pack jobs: each job is processed exactly once."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import func, select

from dataset_worker.db import Database
from dataset_worker.db.models import Car, Job, JobState, JobType
from dataset_worker.prep import CreatePreparationRequest, create_preparation, start_scan

pytest.importorskip(
    "dataset_worker.worker.jobs.pack.job",
    reason="dataset_worker.worker.jobs.pack.job (run_pack, the real pack job body) is not in the tree yet",
)

PROCESSES = 4
CONCURRENCY = 2
MIN_PACK_JOBS = 500


# Each worker's output goes to a temporary file, not a pipe: a pipe nobody reads while the test
# waits for another process fills up and blocks that worker in its logging, with a job held.
_OUTPUT: dict[int, IO[bytes]] = {}


def run_worker(database_url: str, state: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "dataset_worker", "--database-url", database_url]
    command += ["--state-dir", str(state), "run", "--exit-on-complete", "--exit-on-error"]
    command += ["--min-interval", "100ms", "--max-interval", "1s", *args]
    output = tempfile.TemporaryFile()
    proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    _OUTPUT[proc.pid] = output
    return proc


def finish(proc: subprocess.Popen[bytes], timeout: float = 240) -> tuple[int, str]:
    """Wait for the process (killing it after `timeout`); its exit code and output."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with _OUTPUT.pop(proc.pid) as output:
        output.seek(0)
        return proc.returncode, output.read().decode(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_processes_share_pack_jobs_without_loss_or_duplicates(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for index in range(MIN_PACK_JOBS + 20):
        (source / f"f{index:04d}.bin").write_bytes(index.to_bytes(4, "big") * 75)  # 300 bytes
    # maxSize 500 bytes: every file's ranges fill one pack job of their own.
    request = CreatePreparationRequest.model_validate(
        {
            "name": "stress",
            "source": str(source),
            "output": str(tmp_path / "out"),
            "maxSize": 500,
            "minPieceSize": 256,
            "noAuto": True,
        }
    )
    create_preparation(db, request)
    start_scan(db, "stress")
    code, out = finish(
        run_worker(database_url, tmp_path / "state", "--no-enable-pack", "--no-enable-dag")
    )
    assert code == 0, out[-4000:]
    with db.read() as session:
        pack_ids = set(session.scalars(select(Job.id).where(Job.type == JobType.PACK)))
    assert len(pack_ids) >= MIN_PACK_JOBS

    workers = [
        run_worker(
            database_url,
            tmp_path / "state",
            "--concurrency",
            str(CONCURRENCY),
            "--no-enable-scan",
            "--no-enable-dag",
        )
        for _ in range(PROCESSES)
    ]
    results = [finish(proc) for proc in workers]
    for code, out in results:
        assert code == 0, out[-4000:]
    outputs = [out for _, out in results]

    claims = Counter(
        int(match)
        for out in outputs
        for match in re.findall(r"job\.claimed job=(\d+) type=pack", out)
    )
    assert set(claims) == pack_ids  # none lost
    assert max(claims.values()) == 1  # none processed twice
    assert sum(1 for out in outputs if "job.complete" in out) >= 2  # the work was shared
    with db.read() as session:
        states = Counter(session.scalars(select(Job.state).where(Job.type == JobType.PACK)))
        cars_per_job = session.execute(
            select(Car.job_id, func.count()).where(Car.job_id.is_not(None)).group_by(Car.job_id)
        ).all()
    assert states == {JobState.COMPLETE: len(pack_ids)}
    assert {job_id for job_id, _ in cars_per_job} == pack_ids
    assert {count for _, count in cars_per_job} == {1}
    assert len(list((tmp_path / "out").glob("*.car"))) == len(pack_ids)
