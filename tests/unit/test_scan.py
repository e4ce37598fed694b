"""The scan job (docs/architecture.md#scan-job) on SQLite and PostgreSQL, with Singularity's TestScan vector."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update

from dataset_worker.db import Database
from dataset_worker.db.models import Directory, File, FileRange, Job, JobState, JobType
from dataset_worker.db.queue import claim_next_job
from dataset_worker.prep import start_pack
from dataset_worker.prep.retry import retry_jobs
from dataset_worker.worker.jobs.carsize import to_car_size
from dataset_worker.worker.jobs.scan import job as scan_module
from dataset_worker.worker.jobs.scan import writer as writer_module
from dataset_worker.worker.jobs.scan.batching import range_split_size, split_file
from tests.support.jobs import add_job, make_local_preparation, new_worker, run_job

KIB, MIB = 1 << 10, 1 << 20

# Singularity's service/datasetworker/scan_test.go TestScan (docs/formats.md#grouping-ranges-into-pack-jobs).
TEST_SCAN_FILES = {
    "empty.bin": 0,
    "1.bin": 1,
    "1k.bin": KIB,
    "1m.bin": MIB,
    "16m.bin": 16 * MIB,
    "1/2/3/10.bin": 10,
    "1/2/3/11.bin": 11,
    "1/2/3 1.bin": 31,
    "1/2/32.bin": 32,
}


def write_tree(root: Path, files: dict[str, int]) -> None:
    for rel, size in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def scan(db: Database, attachment_id: int) -> None:
    run = run_job(db, add_job(db, attachment_id, JobType.SCAN))
    assert run.state is JobState.COMPLETE, run.error


def counts(db: Database, attachment_id: int) -> tuple[int, int, int, int]:
    with db.read() as s:
        dirs = s.scalar(select(func.count()).where(Directory.attachment_id == attachment_id))
        files = s.scalar(select(func.count()).where(File.attachment_id == attachment_id))
        jobs = s.scalar(select(func.count()).select_from(Job))
        ranges = s.scalar(select(func.count()).select_from(FileRange))
    assert dirs is not None and files is not None and jobs is not None and ranges is not None
    return dirs, files, jobs, ranges


def test_car_size_estimate_matches_singularity() -> None:
    assert to_car_size(0) == 37
    assert to_car_size(-1) == 38
    assert to_car_size(1) == 40
    assert to_car_size(MIB) == MIB + 39
    assert to_car_size(MIB + 1) == MIB + 1 + 2 * 39 + 2 * 52 + 44


def test_split_size_and_ranges() -> None:
    assert range_split_size(33_822_867_456) == 1 << 30
    assert range_split_size(2_000_000) == 512 * KIB
    assert list(split_file(0, 10)) == [(0, 0)]
    assert list(split_file(-1, 10)) == [(0, -1)]
    assert list(split_file(25, 10)) == [(0, 10), (10, 10), (20, 5)]


def test_singularity_test_scan_vector(db: Database, tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_tree(source, TEST_SCAN_FILES)
    rows = make_local_preparation(db, "p", source, tmp_path / "out", max_size=2_000_000)
    scan(db, rows.attachment_id)
    dirs, files, jobs, ranges = counts(db, rows.attachment_id)
    assert (dirs, files, jobs, ranges) == (4, 9, 13, 41)
    with db.read() as s:
        pack_states = s.scalars(select(Job.state).where(Job.type == JobType.PACK)).all()
        unassigned = s.scalar(select(func.count()).where(FileRange.job_id.is_(None)))
        names = set(s.scalars(select(Directory.name)).all())
    assert pack_states == [JobState.READY] * 12
    assert unassigned == 0
    assert names == {"", "1", "2", "3"}


def test_files_keep_size_mtime_and_directory(db: Database, tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_tree(source, {"a/b/c.txt": 5, "top.txt": 3})
    (source / "empty-dir" / "deeper").mkdir(parents=True)
    os.utime(source / "top.txt", ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    rows = make_local_preparation(db, "p", source, tmp_path / "out")
    scan(db, rows.attachment_id)
    with db.read() as s:
        top = s.scalars(select(File).where(File.path == "top.txt")).one()
        deep = s.scalars(select(File).where(File.path == "a/b/c.txt")).one()
        b_dir = s.get(Directory, deep.directory_id)
        dirs = s.scalars(select(Directory.name).order_by(Directory.id)).all()
    assert (top.size, top.last_modified_nano) == (3, 1_700_000_000_123_456_789)
    assert top.directory_id == rows.root_directory_id
    assert b_dir is not None and b_dir.name == "b"
    # Breadth first, sorted: root, then "a" and "empty-dir", then their children.
    assert dirs == ["", "a", "empty-dir", "b", "deeper"]


def test_rescan_is_incremental(db: Database, tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_tree(source, {"a.bin": 100, "d/b.bin": 200})
    rows = make_local_preparation(db, "p", source, tmp_path / "out")
    scan(db, rows.attachment_id)
    assert counts(db, rows.attachment_id) == (2, 2, 2, 2)  # 1 scan + 1 pack job
    scan(db, rows.attachment_id)  # nothing new: no file, range or job
    assert counts(db, rows.attachment_id) == (2, 2, 3, 2)
    (source / "a.bin").write_bytes(b"changed")  # new size: a new File row, same path
    write_tree(source, {"d/e/new.bin": 1})
    scan(db, rows.attachment_id)
    # The old, never packed version of a.bin is dropped with its range; the unfinished pack job
    # that held it is rebuilt: one job for the new files, one for d/b.bin's range it freed.
    assert counts(db, rows.attachment_id) == (3, 3, 5, 3)
    with db.read() as s:
        versions = s.scalars(select(File.size).where(File.path == "a.bin").order_by(File.id))
        assert list(versions) == [7]


def test_leftover_ranges_are_rebatched(db: Database, tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_tree(source, {"a.bin": 10, "b.bin": 10})
    rows = make_local_preparation(db, "p", source, tmp_path / "out")
    scan(db, rows.attachment_id)
    with db.write() as s:  # as if the pack job had been deleted: its ranges lose their job
        s.execute(update(FileRange).values(job_id=None))
    scan(db, rows.attachment_id)
    with db.read() as s:
        jobs = s.scalars(select(FileRange.job_id).distinct()).all()
        pack_jobs = s.scalar(select(func.count()).where(Job.type == JobType.PACK))
    assert len(jobs) == 1 and jobs[0] is not None
    assert pack_jobs == 2


def test_leftovers_are_rebatched_into_the_jobs_a_scan_would_make(
    db: Database, tmp_path: Path
) -> None:
    # 450 leftover ranges: more than one page of the re-batching (CHECK_EVERY = 200), in jobs
    # that close inside pages and at their edges.
    source = tmp_path / "src"
    write_tree(source, {f"f{i:03}.bin": (i * 7919) % 3000 for i in range(450)})
    rows = make_local_preparation(
        db, "p", source, tmp_path / "out", max_size=40_000, min_piece_size=256
    )
    scan(db, rows.attachment_id)
    planned = job_groups(db)
    with db.write() as s:  # as if every pack job had been deleted: the ranges lose their job
        s.execute(update(FileRange).values(job_id=None))
        s.execute(delete(Job).where(Job.type == JobType.PACK))
    scan(db, rows.attachment_id)
    assert len(planned) > 10
    assert job_groups(db) == planned


@pytest.mark.parametrize("max_size", [10_000, 300_000])
def test_jobs_never_exceed_max_size_estimate(db: Database, tmp_path: Path, max_size: int) -> None:
    source = tmp_path / "src"
    write_tree(source, {f"f{i:03}.bin": (i * 7919) % 50_000 for i in range(60)})
    rows = make_local_preparation(
        db, "p", source, tmp_path / "out", max_size=max_size, min_piece_size=256
    )
    scan(db, rows.attachment_id)
    with db.read() as s:
        by_job: dict[int, int] = {}
        for job_id, length in s.execute(select(FileRange.job_id, FileRange.length)):
            assert job_id is not None
            by_job[job_id] = by_job.get(job_id, 59) + to_car_size(length)
        range_ids = s.execute(select(FileRange.id, FileRange.job_id).order_by(FileRange.id)).all()
    single = {j for j, total in by_job.items() if total > max_size}
    for job_id in single:  # only a range that can never fit may stand alone over the limit
        with db.read() as s:
            n = s.scalar(select(func.count()).where(FileRange.job_id == job_id))
        assert n == 1
    job_order = [job_id for _, job_id in range_ids if job_id is not None]
    assert len(job_order) == len(range_ids)  # every range is in a job
    assert job_order == sorted(job_order)  # ranges fill jobs in scan order


def test_missing_root_directory_fails(db: Database, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    rows = make_local_preparation(db, "p", source, tmp_path / "out")
    with db.write() as s:
        s.execute(delete(Directory))
    run = run_job(db, add_job(db, rows.attachment_id, JobType.SCAN))
    assert run.state is JobState.ERROR
    assert "no root directory" in str(run.error)


def job_groups(db: Database) -> list[list[tuple[str, int]]]:
    """Pack jobs as lists of (path, offset), in job order."""
    with db.read() as s:
        rows = s.execute(
            select(FileRange.job_id, File.path, FileRange.offset)
            .join(File, File.id == FileRange.file_id)
            .order_by(FileRange.job_id, FileRange.id)
        ).all()
    groups: dict[int | None, list[tuple[str, int]]] = {}
    for job_id, path, offset in rows:
        groups.setdefault(job_id, []).append((path, offset))
    return list(groups.values())


def test_batches_do_not_change_how_jobs_are_filled(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src"
    write_tree(source, TEST_SCAN_FILES)
    rows = make_local_preparation(db, "p", source, tmp_path / "out", max_size=2_000_000)
    scan(db, rows.attachment_id)
    whole = job_groups(db)
    with db.write() as s:  # start again from an empty attachment
        s.execute(delete(FileRange))
        s.execute(delete(File))
        s.execute(delete(Job))
    monkeypatch.setattr(scan_module, "BATCH_FILES", 2)  # a transaction every two entries
    scan(db, rows.attachment_id)
    assert job_groups(db) == whole
    assert len(whole) == 12


def _forbid_job_updates(db: Database) -> Callable[[], None]:
    """Make any UPDATE of file_ranges.job_id fail; returns the undo (the PostgreSQL database
    outlives the test)."""
    if db.is_sqlite:
        with db.write() as s:
            s.execute(
                text(
                    "CREATE TRIGGER no_job_update BEFORE UPDATE OF job_id ON file_ranges "
                    "BEGIN SELECT RAISE(ABORT, 'file_ranges.job_id updated'); END"
                )
            )
        return lambda: None
    with db.write() as s:
        s.execute(
            text(
                "CREATE FUNCTION no_job_update() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'file_ranges.job_id updated'; END $$"
            )
        )
        s.execute(
            text(
                "CREATE TRIGGER no_job_update BEFORE UPDATE OF job_id ON file_ranges "
                "FOR EACH ROW EXECUTE FUNCTION no_job_update()"
            )
        )

    def undo() -> None:
        with db.write() as s:
            s.execute(text("DROP TRIGGER no_job_update ON file_ranges"))
            s.execute(text("DROP FUNCTION no_job_update()"))

    return undo


def test_a_scan_writes_each_ranges_job_once(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every range goes in with its job's id: the job being filled exists (`created`) from its
    first range on. An UPDATE of the indexed job_id would leave a dead row version on
    PostgreSQL for nearly every range of a tiny-file dataset."""
    monkeypatch.setattr(scan_module, "BATCH_FILES", 7)  # jobs fill across many transactions
    source = tmp_path / "src"
    write_tree(source, {f"d{i % 4}/f{i:03}.bin": (i * 7919) % 3000 for i in range(300)})
    rows = make_local_preparation(
        db, "p", source, tmp_path / "out", max_size=40_000, min_piece_size=256
    )
    undo = _forbid_job_updates(db)
    try:
        scan(db, rows.attachment_id)
    finally:
        undo()
    with db.read() as s:
        states = s.execute(
            select(Job.state, func.count()).where(Job.type == JobType.PACK).group_by(Job.state)
        ).all()
        jobless = s.scalar(select(func.count()).where(FileRange.job_id.is_(None)))
    assert jobless == 0
    assert len(states) == 1 and states[0][0] is JobState.READY and states[0][1] > 10


def test_the_job_an_interrupted_scan_was_filling_is_never_claimed_and_is_batched_again(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src"
    write_tree(source, {f"f{i:03}.bin": (i * 7919) % 3000 for i in range(450)})
    rows = make_local_preparation(
        db, "p", source, tmp_path / "out", max_size=40_000, min_piece_size=256
    )

    def crash(*_args: object) -> None:
        raise RuntimeError("killed before the last job was full")

    with monkeypatch.context() as patch:  # the scan dies before it closes the last job
        patch.setattr(writer_module.ScanWriter, "finish", crash)
        scan_job = add_job(db, rows.attachment_id, JobType.SCAN)
        assert run_job(db, scan_job).state is JobState.ERROR
    planned = job_groups(db)
    with db.read() as s:
        [filling] = s.scalars(select(Job.id).where(Job.state == JobState.CREATED)).all()
        held = s.scalar(select(func.count()).where(FileRange.job_id == filling))
        ready = set(s.scalars(select(Job.id).where(Job.state == JobState.READY)))
    assert held and len(ready) > 10

    # Never claimed, and a start leaves it alone: its scan may still be adding to it.
    worker = new_worker(db)
    claimed = set()
    while (job := claim_next_job(db, worker, [JobType.PACK])) is not None:
        claimed.add(job.id)
    assert claimed == ready
    assert start_pack(db, "p") == []
    with db.read() as s:
        assert s.scalar(select(Job.state).where(Job.id == filling)) is JobState.CREATED

    # The next scan dissolves it and batches its ranges again: the same groups, all ready.
    retry_jobs(db, "p", "scan")
    assert run_job(db, scan_job).state is JobState.COMPLETE
    assert job_groups(db) == planned
    with db.read() as s:
        assert s.scalar(select(func.count()).where(Job.state == JobState.CREATED)) == 0
