"""Pack jobs record each file's sha256 (files.sha256) on SQLite and PostgreSQL: whole files and
split files in one job while packing, split files spread over jobs by one more read."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import select, update

from dataset_worker.db import Database
from dataset_worker.db.filecid import file_cid
from dataset_worker.db.models import File, FileRange, Job, JobState, JobType, Preparation
from dataset_worker.prep.manifest_rows import file_sha256
from dataset_worker.worker.runtime.context import JobContext
from tests.support.jobs import (
    add_job,
    make_local_preparation,
    run_job,
    scan_and_pack,
    write_files,
)

MIB = 1 << 20
# max size 4 MB (piece 4 MiB): files are cut into 1 MiB ranges. a_same.bin comes first and its 3 ranges fill
# the first job together; b_spread.bin's 9 ranges need several jobs.
FILES: dict[str, int | bytes] = {
    "a_same.bin": 2 * MIB + MIB // 2,
    "b_spread.bin": 9 * MIB,
    "c.txt": b"hello\n",
    "empty": b"",
    "dir/deeper/d.bin": 10_000,
    "dir/ünï.txt": b"unicode",
}
MAX_SIZE = 4_000_000


def _prepare(db: Database, tmp_path: Path, *, file_hash: bool = True) -> tuple[int, Path]:
    source = tmp_path / "source"
    write_files(source, FILES)
    rows = make_local_preparation(db, "hashes", source, tmp_path / "out", max_size=MAX_SIZE)
    if not file_hash:
        with db.write() as session:
            session.execute(update(Preparation).values(file_hash=False))
    return rows.attachment_id, source


def _stored(db: Database) -> dict[str, bytes | None]:
    with db.read() as session:
        return {path: sha for path, sha in session.execute(select(File.path, File.sha256))}


def _hashes(db: Database, hashed: bool = True) -> dict[str, bytes | None]:
    """Each file's sha256 as the exports give it: stored, or a one-leaf file's CID digest."""
    with db.read() as session:
        rows = session.execute(select(File.path, File.sha256, file_cid()))
        return {path: file_sha256(sha, cid, hashed) for path, sha, cid in rows}


def _jobs_of(db: Database, path: str) -> list[int]:
    with db.read() as session:
        return list(
            session.scalars(
                select(FileRange.job_id)
                .join(File, File.id == FileRange.file_id)
                .where(File.path == path)
                .order_by(FileRange.offset)
            )
        )


def _rehashed(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [getattr(r, "file", -1) for r in caplog.records if r.getMessage() == "pack.file_hashed"]


def test_every_file_gets_the_sha256_of_its_bytes(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    attachment, source = _prepare(db, tmp_path)
    caplog.set_level(logging.INFO, logger="dataset_worker.job")
    runs = scan_and_pack(db, attachment)
    assert all(run.state is JobState.COMPLETE for run in runs), runs
    # The two split-file cases this test is about really happen.
    assert len(set(_jobs_of(db, "a_same.bin"))) == 1
    assert len(set(_jobs_of(db, "b_spread.bin"))) > 1

    hashes = _hashes(db)
    assert set(hashes) == set(FILES)
    for path in FILES:
        assert hashes[path] == hashlib.sha256((source / path).read_bytes()).digest(), path
    # Files of one raw leaf store no hash: their CID's digest is it.
    stored = _stored(db)
    one_leaf = {"c.txt", "empty", "dir/deeper/d.bin", "dir/ünï.txt"}
    assert {path for path, sha in stored.items() if sha is None} == one_leaf
    # Only the file spread over several jobs was read a second time, once.
    with db.read() as session:
        spread_id = session.scalar(select(File.id).where(File.path == "b_spread.bin"))
    assert _rehashed(caplog) == [spread_id]


def test_no_file_hash_leaves_every_sha256_null(db: Database, tmp_path: Path) -> None:
    attachment, _ = _prepare(db, tmp_path, file_hash=False)
    runs = scan_and_pack(db, attachment)
    assert all(run.state is JobState.COMPLETE for run in runs), runs
    hashes = _hashes(db, hashed=False)
    assert len(hashes) == len(FILES)
    assert set(hashes.values()) == {None}
    assert set(_stored(db).values()) == {None}


def _forget_spread_hash(db: Database) -> int:
    """Put the database back in the state of a run interrupted while it re-read b_spread.bin:
    everything recorded, the file's sha256 not yet; its finalising job ready again."""
    finaliser = _jobs_of(db, "b_spread.bin")[-1]
    with db.write() as session:
        session.execute(update(File).where(File.path == "b_spread.bin").values(sha256=None))
        session.execute(update(Job).where(Job.id == finaliser).values(state=JobState.READY))
    return finaliser


def test_a_rerun_of_the_finalising_job_finishes_an_interrupted_hash(
    db: Database, tmp_path: Path
) -> None:
    attachment, source = _prepare(db, tmp_path)
    scan_and_pack(db, attachment)
    finaliser = _forget_spread_hash(db)

    run = run_job(db, finaliser)

    assert run.state is JobState.COMPLETE, run.error
    expected = hashlib.sha256((source / "b_spread.bin").read_bytes()).digest()
    assert _hashes(db)["b_spread.bin"] == expected


def test_a_file_changed_since_packing_keeps_no_hash_and_the_job_still_completes(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    attachment, source = _prepare(db, tmp_path)
    scan_and_pack(db, attachment)
    finaliser = _forget_spread_hash(db)
    changed = source / "b_spread.bin"
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    caplog.set_level(logging.INFO, logger="dataset_worker.job")

    run = run_job(db, finaliser)

    assert run.state is JobState.COMPLETE, run.error
    assert _hashes(db)["b_spread.bin"] is None
    skipped = [r for r in caplog.records if r.getMessage() == "pack.file_hash_skipped"]
    assert [getattr(r, "path", "") for r in skipped] == ["b_spread.bin"]


def test_the_recording_completes_the_job_unless_a_split_file_is_hashed_after_it(
    db: Database, tmp_path: Path
) -> None:
    """A pack job hands its completion to its recording transaction (JobContext.finish), except
    the job that finalises a split file it could not hash while packing: that reading comes
    after the commit and may still fail the job."""
    attachment, _ = _prepare(db, tmp_path)
    assert run_job(db, add_job(db, attachment, JobType.SCAN)).state is JobState.COMPLETE
    finished: list[tuple[int, bool]] = []

    def record_finish(ctx: JobContext) -> None:
        ctx.finish = lambda session: finished.append((ctx.job_id, session.in_transaction()))

    with db.read() as session:
        packs = list(session.scalars(select(Job.id).where(Job.type == JobType.PACK)))
    for job_id in packs:
        assert run_job(db, job_id, before=record_finish).state is JobState.COMPLETE
    finaliser = _jobs_of(db, "b_spread.bin")[-1]
    assert finished == [(job_id, True) for job_id in packs if job_id != finaliser]
