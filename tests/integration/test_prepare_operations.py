"""`dataset-worker prepare` as an operator runs it: it works on its own preparation only, and
Ctrl-C stops it in the middle of a long scan transaction, leaving the scan job ready (not held by
a dead process), so the preparation can be resumed or deleted."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType, Preparation, SourceAttachment, Worker
from tests.support.jobs import write_files
from tests.support.wait import wait_exit, wait_until

MIB = 1 << 20


def _command(tmp_path: Path, database_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "dataset_worker", "--state-dir", str(tmp_path / "state"),
            "--database-url", database_url, *args]  # fmt: skip


def _run(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(tmp_path, database_url, *args),
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _jobs(db: Database, name: str) -> dict[JobType, list[JobState]]:
    with db.read() as session:
        rows = session.execute(
            select(Job.type, Job.state)
            .join(SourceAttachment, SourceAttachment.id == Job.attachment_id)
            .join(Preparation, Preparation.id == SourceAttachment.preparation_id)
            .where(Preparation.name == name)
            .order_by(Job.id)
        )
        found: dict[JobType, list[JobState]] = {}
        for job_type, state in rows:
            found.setdefault(job_type, []).append(state)
        return found


@pytest.mark.parametrize("concurrency", ["1", "2"])
def test_prepare_claims_only_the_jobs_of_its_own_preparation(
    db: Database, database_url: str, tmp_path: Path, concurrency: str
) -> None:
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    write_files(theirs, {"a.bin": 1000, "b.bin": 2000, "c/d.bin": 3000})
    write_files(ours, {"x.bin": 5000, "y/z.bin": 100})
    created = _run(tmp_path, database_url, "prep", "create", "--name", "theirs", "--source",
                   str(theirs), "--output", str(tmp_path / "theirs-cars"), "--max-size", "1MB")  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    assert _jobs(db, "theirs") == {JobType.SCAN: [JobState.READY]}  # queued first, lower id
    if concurrency == "2":  # their pack jobs are ready too: the helper processes pack only
        scanned = _run(tmp_path, database_url, "run", "--prep", "theirs", "--exit-on-complete",
                       "--no-enable-pack", "--no-enable-dag")  # fmt: skip
        assert scanned.returncode == 0, scanned.stdout + scanned.stderr
    before = _jobs(db, "theirs")

    done = _run(tmp_path, database_url, "prepare", str(ours), "--name", "ours",
                "--max-size", "1MB", "--concurrency", concurrency)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert _jobs(db, "theirs") == before  # left to its own workers
    if concurrency == "2":
        assert JobState.READY in before[JobType.PACK]
    states = _jobs(db, "ours")
    assert {state for listed in states.values() for state in listed} == {JobState.COMPLETE}
    # The progress lines count this preparation's two files, never the other's three.
    progress = [line for line in done.stdout.splitlines() if " files, " in line]
    assert progress and all(" 2 files, " in line or " 0 files, " in line for line in progress)


def _long_write_transaction(database_url: str) -> bool:
    """True while some connection has held a write transaction open for over a second."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        probe = sqlite3.connect(str(url.database), timeout=1.0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:  # database is locked: held for over a second
            return True
        finally:
            probe.close()
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL "
            "AND xact_start < now() - interval '1 second'"
        ).fetchone()
        return bool(row and row[0])


@pytest.mark.parametrize("interrupts", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_stops_a_long_scan_and_leaves_its_job_ready(
    db: Database, database_url: str, tmp_path: Path, interrupts: int
) -> None:
    """A 20 MB file under --max-size 100 makes ~650 000 ranges and pack jobs in the scan's
    first write transaction, which takes a minute: Ctrl-C must stop it, not wait for it."""
    source = tmp_path / "big"
    source.mkdir()
    with (source / "big.bin").open("wb") as stream:
        stream.truncate(20 * MIB)  # sparse: the scan only lists it
    log_path = tmp_path / "prepare.out"
    command = _command(tmp_path, database_url, "prepare", str(source), "--name", "big",
                       "--max-size", "100", "--concurrency", "1")  # fmt: skip
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    worker_log = tmp_path / "state" / "logs" / "prepare-big.log"
    try:
        wait_until(lambda: _long_write_transaction(database_url), 120, "the scan's transaction")
        process.send_signal(signal.SIGINT)
        if interrupts == 2:
            wait_until(lambda: "worker.signal" in worker_log.read_text(), 30, "first Ctrl-C")
            process.send_signal(signal.SIGINT)
        # Far below the minute the transaction would take to finish by itself.
        code = wait_exit(process, 20, "prepare after Ctrl-C")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log_path.read_text()
    assert code == 130, output + worker_log.read_text()
    assert _jobs(db, "big") == {JobType.SCAN: [JobState.READY]}  # no pack job half-written
    with db.read() as session:
        assert session.scalars(select(Worker.id)).all() == []
    deleted = _run(tmp_path, database_url, "prep", "delete", "big", "--yes")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
