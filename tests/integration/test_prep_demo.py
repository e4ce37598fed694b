"""ensure_demo_preparation: the sample tree and preparation, idempotently."""

from __future__ import annotations

from pathlib import Path

from dataset_worker.db import Database
from dataset_worker.db.models import JobState, JobType
from dataset_worker.prep import get_preparation_status, list_preparations
from dataset_worker.prep.create import validate_sizes
from dataset_worker.prep.demo import DEMO_MAX_SIZE, ensure_demo_preparation


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def test_creates_tree_and_preparation(db: Database, tmp_path: Path) -> None:
    view = ensure_demo_preparation(db, tmp_path)

    source, output = tmp_path / "demo-source", tmp_path / "demo-output"
    assert view.name == "demo"
    assert view.source_storages[0].path == str(source)
    assert view.output_storages[0].path == str(output)
    assert output.is_dir()
    files = [p for p in source.rglob("*") if p.is_file()]
    sizes = [p.stat().st_size for p in files]
    assert 0 in sizes  # an empty file
    assert any(size > 1 << 20 for size in sizes)  # larger than the 1 MiB range size
    assert any(" " in p.name for p in files)
    assert any(not p.name.isascii() for p in files)
    assert any(len(p.relative_to(source).parts) >= 3 for p in files)  # nested
    empty_dirs = [p for p in source.rglob("*") if p.is_dir() and not any(p.iterdir())]
    assert empty_dirs
    assert not list(source.rglob("*.partial"))
    # Several pack jobs: more data than one CAR of the max size holds.
    assert sum(sizes) > 2 * validate_sizes(DEMO_MAX_SIZE, None, None).max_size
    assert get_preparation_status(db, "demo").total_jobs() == 0  # no scan unless asked


def test_second_call_changes_nothing(db: Database, tmp_path: Path) -> None:
    first = ensure_demo_preparation(db, tmp_path)
    before = _snapshot(tmp_path / "demo-source")
    second = ensure_demo_preparation(db, tmp_path)
    assert second.id == first.id
    assert _snapshot(tmp_path / "demo-source") == before
    assert len(list_preparations(db)) == 1


def test_missing_files_are_restored(db: Database, tmp_path: Path) -> None:
    ensure_demo_preparation(db, tmp_path)
    victim = tmp_path / "demo-source" / "data" / "large.bin"
    content = victim.read_bytes()
    victim.unlink()
    ensure_demo_preparation(db, tmp_path)
    assert victim.read_bytes() == content  # the same pseudo-random bytes again


def test_scan_option_starts_the_scan_once(db: Database, tmp_path: Path) -> None:
    ensure_demo_preparation(db, tmp_path, scan=True)
    ensure_demo_preparation(db, tmp_path, scan=True)
    status = get_preparation_status(db, "demo")
    assert status.jobs[JobType.SCAN][JobState.READY] == 1
    assert status.total_jobs() == 1
