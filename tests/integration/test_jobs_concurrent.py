"""Pack jobs finishing at the same time must not lose directory entries (docs/architecture.md#directory-tree-upkeep's race).

Many pack jobs touch the same directories (and share split files); they run in parallel
threads, each under its own worker id. Afterwards the root CID must equal the one computed
straight from the folder, and the whole tree must read back from the CARs.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select

from dataset_worker.db import Database
from dataset_worker.db.models import Car, Directory, Job, JobState, JobType, PieceType
from dataset_worker.verify.readback import verify_tree
from tests.support.jobs import (
    JobRun,
    add_job,
    make_local_preparation,
    new_worker,
    reference_root,
    run_job,
    write_files,
)

THREADS = 4


def test_parallel_pack_jobs_keep_every_entry(db: Database, tmp_path: Path) -> None:
    source = tmp_path / "src"
    files: dict[str, int | bytes] = {}
    for d in range(6):
        for f in range(12):
            files[f"dir{d % 3}/sub{d}/f{f:02d}.bin"] = 700 + 97 * f
        files[f"top{d}.bin"] = 5000  # split over ranges of 1 KiB, across jobs
    write_files(source, files)
    (source / "empty" / "deeper").mkdir(parents=True)
    rows = make_local_preparation(
        db, "p", source, tmp_path / "out", max_size=4000, min_piece_size=256
    )
    assert run_job(db, add_job(db, rows.attachment_id, JobType.SCAN)).state is JobState.COMPLETE
    with db.read() as s:
        job_ids = list(s.scalars(select(Job.id).where(Job.type == JobType.PACK).order_by(Job.id)))
    assert len(job_ids) > 30

    runs: list[JobRun] = []
    lock = threading.Lock()

    def worker(mine: list[int]) -> None:
        worker_id = new_worker(db)
        for job_id in mine:
            run = run_job(db, job_id, worker_id=worker_id)
            with lock:
                runs.append(run)

    threads = [threading.Thread(target=worker, args=(job_ids[i::THREADS],)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    assert not any(t.is_alive() for t in threads)
    failed = [(r.job_id, r.error) for r in runs if r.state is not JobState.COMPLETE]
    assert failed == [] and len(runs) == len(job_ids)

    expected = reference_root(source, 1024)
    assert expected is not None
    with db.read() as s:
        root_cid = s.scalar(select(Directory.cid).where(Directory.parent_id.is_(None)))
        data_cars = s.scalar(select(func.count()).where(Car.piece_type == PieceType.DATA))
    assert root_cid == expected[0]
    assert data_cars == len(job_ids)
    assert run_job(db, add_job(db, rows.attachment_id, JobType.DAGGEN)).state is JobState.COMPLETE
    cars = sorted((tmp_path / "out").glob("*.car"))
    assert len(cars) == len(job_ids) + 1
    assert verify_tree(cars, expected[0], source) == len(files)
