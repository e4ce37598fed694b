"""Directory tree upkeep (docs/architecture.md#directory-tree-upkeep) and the daggen job (docs/formats.md#dag-piece), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from dataset_worker.content.car import CarReader
from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import Car, CarBlock, Directory, JobState, JobType, PieceType
from dataset_worker.verify.readback import verify_tree
from dataset_worker.worker.jobs.dirdata import build_node, decode_entries, extra_blocks
from tests.support.jobs import (
    JobRun,
    PreparationRows,
    add_job,
    make_local_preparation,
    reference_root,
    run_job,
    scan_and_pack,
    write_files,
)

KIB, MIB = 1 << 10, 1 << 20

TREE: dict[str, int | bytes] = {
    "empty.bin": 0,
    "1.bin": 1,
    "1k.bin": KIB,
    "3m.bin": 3 * MIB + 7,
    "1/2/3/10.bin": 10,
    "1/2/3/11.bin": 11,
    "1/2/3 1.bin": 31,
    "1/2/32.bin": 32,
    "sp ace/ünï.txt": b"unicode",
}


def prepare(
    db: Database, tmp_path: Path, files: dict[str, int | bytes], **kw: Any
) -> PreparationRows:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    write_files(source, files)
    (source / "empty-dir" / "nested").mkdir(parents=True)
    return make_local_preparation(db, "p", source, tmp_path / "out", **kw)


def daggen(db: Database, attachment_id: int) -> JobRun:
    return run_job(db, add_job(db, attachment_id, JobType.DAGGEN))


def dag_cars(db: Database) -> list[Car]:
    with db.read() as s:
        return list(s.scalars(select(Car).where(Car.piece_type == PieceType.DAG).order_by(Car.id)))


def all_cars(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "out").glob("*.car"))


def test_tree_dag_and_full_read_back(db: Database, tmp_path: Path) -> None:
    # max size 2 MiB: 512 KiB ranges, so 3m.bin is split over several ranges and jobs.
    rows = prepare(db, tmp_path, TREE, max_size=2_000_000)
    runs = scan_and_pack(db, rows.attachment_id)
    assert len(runs) >= 2 and all(r.state is JobState.COMPLETE for r in runs)
    root, _size = reference_root(tmp_path / "src", 512 * KIB) or (b"", 0)
    with db.read() as s:
        dirs = s.execute(
            select(Directory.id, Directory.cid, Directory.data).order_by(Directory.id)
        ).all()
    assert dirs[0].cid == root
    assert [d.cid is None for d in dirs].count(True) == 2  # empty-dir and nested: no CID

    assert daggen(db, rows.attachment_id).state is JobState.COMPLETE
    (car,) = dag_cars(db)
    assert car.root_cid == root and car.job_id is None and car.num_of_files == 0
    with open(tmp_path / "out" / car.storage_path, "rb") as stream:
        reader = CarReader(stream)
        blocks = [(b.cid, b.data) for b in reader]
    assert reader.roots == [root]
    expected_blocks = []
    for d in dirs:  # by directory id: own node(s) by CID bytes, then split-file blocks
        if d.cid is None:
            continue
        entries = decode_entries(d.data)
        expected_blocks += sorted(dict(build_node(entries).blocks).items())
        expected_blocks += extra_blocks(entries)
    assert blocks == expected_blocks
    assert any(extra_blocks(decode_entries(d.data)) for d in dirs)  # 3m.bin's file node
    with db.read() as s:
        assert s.scalar(
            select(func.count()).select_from(CarBlock).where(CarBlock.car_id == car.id)
        ) == len(blocks)
        assert s.scalar(select(func.count()).where(Directory.exported.is_(False))) == 2
    assert verify_tree(all_cars(tmp_path), root, tmp_path / "src") == len(TREE)


def test_rerun_exports_only_what_changed(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"a/x.bin": 10, "b/y.bin": 20})
    scan_and_pack(db, rows.attachment_id)
    assert daggen(db, rows.attachment_id).state is JobState.COMPLETE
    again = daggen(db, rows.attachment_id)  # nothing changed: success, no piece
    assert again.state is JobState.COMPLETE and len(dag_cars(db)) == 1
    write_files(tmp_path / "src", {"a/z.bin": 5})
    scan_and_pack(db, rows.attachment_id)
    assert daggen(db, rows.attachment_id).state is JobState.COMPLETE
    first, second = dag_cars(db)
    with db.read() as s:
        root_cid = s.scalar(select(Directory.cid).where(Directory.parent_id.is_(None)))
        blocks = s.scalar(select(func.count()).where(CarBlock.car_id == second.id))
    assert second.root_cid == root_cid != first.root_cid
    assert blocks == 2  # the root and "a"; "b" did not change
    assert verify_tree(all_cars(tmp_path), second.root_cid, tmp_path / "src") == 3


def test_no_inline_dag_has_no_car_blocks(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"a/x.bin": 10}, no_inline=True)
    scan_and_pack(db, rows.attachment_id)
    assert daggen(db, rows.attachment_id).state is JobState.COMPLETE
    assert len(dag_cars(db)) == 1
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(CarBlock)) == 0
        assert s.scalar(select(func.count()).where(Directory.exported.is_(False))) == 2  # empty


def test_dag_piece_is_padded_to_min_piece_size(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"a/x.bin": 10}, min_piece_size=512 * KIB)
    scan_and_pack(db, rows.attachment_id)
    assert daggen(db, rows.attachment_id).state is JobState.COMPLETE
    (car,) = dag_cars(db)
    assert car.piece_size == 512 * KIB
    assert (
        car.file_size
        == 512 * KIB * 127 // 128
        == (tmp_path / "out" / car.storage_path).stat().st_size
    )
    assert car.min_piece_size_padding == 0
    assert car.storage_path == cid_to_str(car.piece_cid) + ".car"


def test_no_dag_preparation_refuses(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"a.bin": 1}, no_dag=True)
    scan_and_pack(db, rows.attachment_id)
    run = daggen(db, rows.attachment_id)
    assert run.state is JobState.ERROR
    assert str(run.error) == "dag generation is disabled for this preparation"
    with db.read() as s:  # and pack jobs did not maintain the tree
        assert s.scalar(select(func.count()).where(Directory.cid.is_not(None))) == 0


def test_daggen_before_any_pack_is_not_ready(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"a.bin": 1})
    run = daggen(db, rows.attachment_id)
    assert run.state is JobState.ERROR and "not ready" in str(run.error)
    assert list((tmp_path / "out").iterdir()) == []


def test_large_directory_becomes_a_hamt(db: Database, tmp_path: Path) -> None:
    # 1120 names of 200 bytes: Σ(200 + 36) = 264320 >= 262144, so boxo shards the directory.
    files: dict[str, int | bytes] = {f"big/{i:0200d}": b"" for i in range(1120)}
    files["small.txt"] = b"x"
    rows = prepare(db, tmp_path, files)
    scan_and_pack(db, rows.attachment_id)
    with db.read() as s:
        data = s.scalar(select(Directory.data).where(Directory.name == "big"))
    node = build_node(decode_entries(data))
    assert node.is_hamt and len(node.blocks) > 1
    assert daggen(db, rows.attachment_id).state is JobState.COMPLETE
    (car,) = dag_cars(db)
    assert verify_tree(all_cars(tmp_path), car.root_cid, tmp_path / "src") == 1121
