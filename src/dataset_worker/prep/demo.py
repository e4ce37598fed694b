"""A small sample dataset and its preparation, so a fresh install has something to work on.

`make run` (the admin server in development) calls `ensure_demo_preparation`. The tree has the
cases worth seeing: nested folders, an empty file, an empty folder, unicode and space names, and
files larger than the 1 MiB range size of a 3.5 MiB max size, so the scan makes several pack jobs.
"""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobType
from dataset_worker.prep.control import start_scan
from dataset_worker.prep.create import create_preparation
from dataset_worker.prep.errors import Conflict, NotFound
from dataset_worker.prep.lookup import find_preparation, single_source
from dataset_worker.prep.views import CreatePreparationRequest, PreparationView

DEMO_NAME = "demo"
DEMO_MAX_SIZE = "3.5MiB"  # like 31.5GiB of 32: room for the CAR overhead in a 4 MiB piece
KIB, MIB = 1024, 1024 * 1024

# Relative path → size in bytes. Contents are pseudo-random, seeded by the path (reproducible).
DEMO_FILES: dict[str, int] = {
    "README.txt": -1,  # the README text below
    "empty.txt": 0,
    "with space.txt": 37,
    "ünïcødé 文件.txt": 123,
    "photos/2024/sunrise.bin": 1 * MIB + 512 * KIB,
    "photos/2024/sunset.bin": 900 * KIB,
    "data/large.bin": 3 * MIB + 17,
    "data/medium.bin": 700 * KIB,
    "data/nested/deeper/small.bin": 10 * KIB,
    "data/nested/notes.md": 2 * KIB,
    "archive/part-1.bin": 2 * MIB,
    "archive/part-2.bin": 2 * MIB + 5,
}
DEMO_EMPTY_FOLDERS = ("empty-folder",)
README = "A sample dataset made by dataset-worker for its demo preparation.\n"


def ensure_demo_preparation(db: Database, base_dir: Path, *, scan: bool = False) -> PreparationView:
    """Create, if missing, `base_dir/demo-source` (sample files), `base_dir/demo-output`, and the
    preparation "demo" over them; return the preparation. Idempotent: existing files are left
    untouched (a rewrite would change their mtime and make a rescan see them as new).

    With `scan=True` the demo runs itself like any new preparation (its scan is queued now, the
    DAG after the last pack job); without it, it is a manual (`--no-auto`) preparation, no job.
    """
    source, output = base_dir / "demo-source", base_dir / "demo-output"
    write_demo_tree(source)
    output.mkdir(parents=True, exist_ok=True)
    view = _find_or_create(db, source, output, auto=scan)
    if scan and not _has_scan_job(db, view.id):
        start_scan(db, view.id)
    return view


def write_demo_tree(root: Path) -> None:
    """Write the sample files and folders under `root`, skipping those that exist."""
    for folder in DEMO_EMPTY_FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for relative, size in DEMO_FILES.items():
        path = root / relative
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        content = README.encode() if size < 0 else _content(relative, size)
        # Write then rename, so an interrupted run never leaves a short file that looks done.
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(content)
        partial.rename(path)


def _content(relative: str, size: int) -> bytes:
    return random.Random(relative).randbytes(size)


def _find_or_create(db: Database, source: Path, output: Path, *, auto: bool) -> PreparationView:
    existing = _find(db)
    if existing is not None:
        return existing
    request = CreatePreparationRequest(
        name=DEMO_NAME,
        source=str(source),
        output=str(output),
        max_size=DEMO_MAX_SIZE,
        no_auto=not auto,
    )
    try:
        return create_preparation(db, request)
    except Conflict:
        found = _find(db)  # created by a concurrent caller in the meantime
        if found is None:
            raise
        return found


def _find(db: Database) -> PreparationView | None:
    with db.read() as session:
        try:
            return PreparationView.from_model(find_preparation(session, DEMO_NAME))
        except NotFound:
            return None


def _has_scan_job(db: Database, prep_id: int) -> bool:
    with db.read() as session:
        attachment = single_source(find_preparation(session, prep_id))
        job = session.scalar(
            select(Job.id).where(Job.type == JobType.SCAN, Job.attachment_id == attachment.id)
        )
        return job is not None
