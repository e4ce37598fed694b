"""The pack job (docs/architecture.md#pack-job) through the real handler, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from dataset_worker.content.car import CarReader
from dataset_worker.content.chunker import DEFAULT_RANGE_SIZE
from dataset_worker.content.cid import EMPTY_FILE_CID, cid_to_str, raw_cid
from dataset_worker.content.commp import commp_of, finalize
from dataset_worker.content.dagpb import decode_node
from dataset_worker.content.unixfs import assemble_file_from_links
from dataset_worker.db import Database
from dataset_worker.db.filecid import ONE_RANGE, file_cid
from dataset_worker.db.models import (
    Car,
    CarBlock,
    Directory,
    File,
    FileRange,
    Job,
    JobState,
    JobType,
)
from dataset_worker.worker.jobs.pack import job as pack_module
from dataset_worker.worker.jobs.pack import record as pack_record
from dataset_worker.worker.runtime.context import JobContext, StopSignal
from tests.spec_vectors import ASSEMBLER_CAR_SIZES, PACK_TEST_FILE
from tests.support.jobs import (
    PreparationRows,
    add_job,
    make_local_preparation,
    reference_root,
    run_job,
    run_ready_jobs,
    scan_and_pack,
    write_files,
)
from tests.support.preps import described_blocks

KIB, MIB = 1 << 10, 1 << 20

# docs/formats.md#car-vectors: CAR bytes for one file of n bytes in one range, as the pack job writes it.
CAR_SIZES = {**ASSEMBLER_CAR_SIZES, PACK_TEST_FILE[0]: PACK_TEST_FILE[1]}


def prepare(
    db: Database, tmp_path: Path, files: dict[str, int | bytes], **kw: Any
) -> PreparationRows:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    write_files(source, files)
    return make_local_preparation(db, "p", source, tmp_path / "out", **kw)


def cars(db: Database) -> list[Car]:
    with db.read() as s:
        return list(s.scalars(select(Car).order_by(Car.id)))


def out_files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").iterdir())


@pytest.mark.parametrize("size", list(CAR_SIZES))
def test_car_sizes_of_the_reference(db: Database, tmp_path: Path, size: int) -> None:
    # min piece 128: no padding, so the file holds exactly the CAR of docs/formats.md#car-vectors.
    rows = prepare(db, tmp_path, {"f.bin": size}, min_piece_size=128)
    runs = scan_and_pack(db, rows.attachment_id)
    assert [r.state for r in runs] == [JobState.COMPLETE], runs[0].error
    (car,) = cars(db)
    path = tmp_path / "out" / car.storage_path
    assert path.stat().st_size == car.file_size == CAR_SIZES[size]
    data = path.read_bytes()
    commitment, piece_size = finalize(commp_of(data), 128)
    assert car.piece_size == piece_size
    assert car.storage_path == cid_to_str(car.piece_cid) + ".car"
    assert car.piece_cid[-32:] == commitment


def test_all_reference_files_in_one_car(db: Database, tmp_path: Path) -> None:
    # The eleven assembler files: the table's sizes but 1,500,000 (from pack_test.go), plus a
    # 2 KiB file (2086 CAR bytes), which is what makes the total come out at 38804284.
    sizes = [n for n in CAR_SIZES if n != 1_500_000] + [2 * KIB]
    files: dict[str, int | bytes] = {f"{n:09d}.bin": n for n in sizes}
    rows = prepare(db, tmp_path, files)
    runs = scan_and_pack(db, rows.attachment_id)
    assert len(runs) == 1 and runs[0].state is JobState.COMPLETE
    (car,) = cars(db)
    assert car.file_size == 38804284 == (tmp_path / "out" / car.storage_path).stat().st_size
    assert car.num_of_files == 11


def test_block_order_root_and_cids(db: Database, tmp_path: Path) -> None:
    two_mib_plus = os.urandom(2 * MIB + 5)
    rows = prepare(db, tmp_path, {"a.bin": two_mib_plus, "b.txt": b"hello", "c.empty": b""})
    scan_and_pack(db, rows.attachment_id)
    (car,) = cars(db)
    with open(tmp_path / "out" / car.storage_path, "rb") as stream:
        reader = CarReader(stream)
        blocks = list(reader)
    chunks = [two_mib_plus[:MIB], two_mib_plus[MIB : 2 * MIB], two_mib_plus[2 * MIB :]]
    leaves = [raw_cid(c) for c in chunks]
    file_dag = assemble_file_from_links([(c, len(d)) for c, d in zip(leaves, chunks, strict=True)])
    expected = [*leaves, file_dag.root_cid, raw_cid(b"hello"), EMPTY_FILE_CID]
    assert [b.cid for b in blocks] == expected
    assert reader.roots == [leaves[0]] and car.root_cid == leaves[0]  # root = first block
    assert decode_node(blocks[3].data).links[0].cid == leaves[0]
    with db.read() as s:
        file_cids = {path: cid for path, cid in s.execute(select(File.path, file_cid()))}
        block_rows = s.execute(
            select(
                CarBlock.cid, CarBlock.car_offset, CarBlock.raw_block, CarBlock.file_offset
            ).order_by(CarBlock.car_offset)
        ).all()
        leaf_ranges = s.execute(
            select(File.path, FileRange.cid, FileRange.car_offset)
            .join(File, File.id == FileRange.file_id)
            .order_by(File.path)
        ).all()
    assert file_cids == {
        "a.bin": file_dag.root_cid,
        "b.txt": raw_cid(b"hello"),
        "c.empty": EMPTY_FILE_CID,
    }
    # The split file's blocks have rows; each one-leaf file keeps its block's place on its range.
    assert [row.cid for row in block_rows] == expected[:4]
    assert [row.car_offset for row in block_rows] == [b.car_offset for b in blocks[:4]]
    assert block_rows[1].file_offset == MIB and block_rows[1].raw_block is None
    assert block_rows[3].raw_block == blocks[3].data and block_rows[3].file_offset is None
    assert [tuple(r) for r in leaf_ranges] == [
        ("a.bin", file_dag.root_cid, None),
        ("b.txt", raw_cid(b"hello"), blocks[4].car_offset),
        ("c.empty", EMPTY_FILE_CID, blocks[5].car_offset),
    ]


def test_small_car_is_padded_to_the_min_piece(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"f.bin": 500_000}, min_piece_size=MIB)
    scan_and_pack(db, rows.attachment_id)
    (car,) = cars(db)
    path = tmp_path / "out" / car.storage_path
    assert (car.piece_size, car.file_size, car.min_piece_size_padding) == (MIB, 1040384, 0)
    data = path.read_bytes()
    assert len(data) == 1040384
    natural = 59 + 3 + 36 + 500_000
    assert data[natural:] == bytes(1040384 - natural)  # literal zeros
    assert car.piece_cid[-32:] == finalize(commp_of(data[:natural]), MIB)[0]


def test_larger_input_streams_without_padding(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"f.bin": 1_500_000}, min_piece_size=MIB)
    scan_and_pack(db, rows.attachment_id)
    (car,) = cars(db)
    assert (car.piece_size, car.file_size) == (2 * MIB, 1500283)
    assert (tmp_path / "out" / car.storage_path).stat().st_size == 1500283


def test_split_file_ranges_of_two_and_three_bytes(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"five.bin": b"12345"}, min_piece_size=128)
    stat = (tmp_path / "src" / "five.bin").stat()
    with db.write() as s:
        job = Job(type=JobType.PACK, state=JobState.READY, attachment_id=rows.attachment_id)
        f = File(
            path="five.bin",
            size=5,
            last_modified_nano=stat.st_mtime_ns,
            attachment_id=rows.attachment_id,
            directory_id=rows.root_directory_id,
        )
        s.add_all([job, f])
        s.flush()
        s.add_all(
            [
                FileRange(offset=0, length=2, file_id=f.id, job_id=job.id),
                FileRange(offset=2, length=3, file_id=f.id, job_id=job.id),
            ]
        )
        s.flush()
        job_id = job.id
    assert run_job(db, job_id).state is JobState.COMPLETE
    (car,) = cars(db)
    assert car.file_size == 138  # no parent node in the CAR
    expected = assemble_file_from_links([(raw_cid(b"12"), 2), (raw_cid(b"345"), 3)]).root_cid
    with db.read() as s:
        assert s.scalar(select(file_cid())) == expected


def test_split_file_across_jobs_gets_its_cid_last(db: Database, tmp_path: Path) -> None:
    content = os.urandom(5000)
    # max size 4000: ranges of 1 KiB, three in the first job and two in the second; the file
    # CID appears with the last one (its node goes to the DAG, in neither CAR).
    rows = prepare(db, tmp_path, {"big.bin": content}, max_size=4000, min_piece_size=128)
    runs = scan_and_pack(db, rows.attachment_id)
    assert [r.state for r in runs] == [JobState.COMPLETE] * 2
    parts = [content[i : i + 1024] for i in range(0, 5000, 1024)]
    links = [(raw_cid(p), len(p)) for p in parts]
    with db.read() as s:
        assert s.scalar(select(file_cid())) == assemble_file_from_links(links).root_cid
        assert [c.num_of_files for c in cars(db)] == [0, 1]


def test_a_whole_file_cid_is_stored_once_on_its_range(db: Database, tmp_path: Path) -> None:
    big = os.urandom(5000)
    rows = prepare(
        db, tmp_path, {"small.bin": b"tiny", "big.bin": big}, max_size=4000, min_piece_size=128
    )
    assert all(r.state is JobState.COMPLETE for r in scan_and_pack(db, rows.attachment_id))
    parts = [big[i : i + 1024] for i in range(0, 5000, 1024)]
    big_cid = assemble_file_from_links([(raw_cid(p), len(p)) for p in parts]).root_cid
    with db.read() as s:
        stored = dict(s.execute(select(File.path, File.cid)).all())
        resolved = dict(s.execute(select(File.path, file_cid())).all())
    # The one-range file keeps only the marker (not NULL: it is packed); the split file, whose
    # CID is no range's, keeps its CID.
    assert stored == {"small.bin": ONE_RANGE, "big.bin": big_cid}
    assert resolved == {"small.bin": raw_cid(b"tiny"), "big.bin": big_cid}
    # A row recorded before the marker holds the whole CID, and reads the same.
    with db.write() as s:
        s.execute(update(File).where(File.path == "small.bin").values(cid=raw_cid(b"tiny")))
    with db.read() as s:
        assert dict(s.execute(select(File.path, file_cid())).all()) == resolved


def test_changed_file_fails_with_its_name(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"keep.bin": 10, "dir/changes.bin": 10})
    assert run_job(db, add_job(db, rows.attachment_id, JobType.SCAN)).state is JobState.COMPLETE
    (tmp_path / "src" / "dir" / "changes.bin").write_bytes(b"0123456789")  # same size, new mtime
    st = (tmp_path / "src" / "dir" / "changes.bin").stat()
    os.utime(tmp_path / "src" / "dir" / "changes.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    (run,) = run_ready_jobs(db, JobType.PACK)
    assert run.state is JobState.ERROR
    assert "dir/changes.bin" in str(run.error) and "changed" in str(run.error)
    assert cars(db) == [] and out_files(tmp_path) == []
    with db.read() as s:
        assert s.scalar(select(func.count()).where(FileRange.cid.is_not(None))) == 0


class CountdownStop(StopSignal):
    """A stop signal that trips after `n` checks (cancellation mid-pack, deterministically)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def is_set(self) -> bool:
        self.left -= 1
        if self.left < 0:
            self.reason = "job was paused"
            return True
        return False


@pytest.mark.parametrize("checks", [0, 3])
def test_cancellation_leaves_no_file_and_no_row(db: Database, tmp_path: Path, checks: int) -> None:
    rows = prepare(db, tmp_path, {"big.bin": 6 * MIB})
    assert run_job(db, add_job(db, rows.attachment_id, JobType.SCAN)).state is JobState.COMPLETE
    with db.read() as s:
        job_id = s.scalar(select(Job.id).where(Job.type == JobType.PACK))
    assert job_id is not None

    def arm(ctx: JobContext) -> None:
        ctx.stop = CountdownStop(checks)

    run = run_job(db, job_id, before=arm)
    assert run.state is JobState.READY
    assert cars(db) == [] and out_files(tmp_path) == []
    assert run_job(db, job_id).state is JobState.COMPLETE  # and it can run again afterwards
    assert len(cars(db)) == 1 and len(out_files(tmp_path)) == 1


def test_rerun_never_creates_a_second_car_row(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"a.bin": 3000, "b.bin": 4000})
    (first,) = scan_and_pack(db, rows.attachment_id)
    (car,) = cars(db)
    # As if the process died after recording but before the job was marked complete.
    with db.write() as s:
        s.execute(update(Job).where(Job.id == first.job_id).values(state=JobState.READY))
    assert run_job(db, first.job_id).state is JobState.COMPLETE
    assert [c.id for c in cars(db)] == [car.id]
    # The CAR file was lost: the re-run packs again and replaces the row.
    (tmp_path / "out" / car.storage_path).unlink()
    assert run_job(db, first.job_id).state is JobState.COMPLETE
    (again,) = cars(db)
    assert again.piece_cid == car.piece_cid
    assert out_files(tmp_path) == [car.storage_path]
    with db.read() as s:
        assert described_blocks(s) == 2


def test_taken_over_job_records_nothing(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"a.bin": 3 * MIB})
    assert run_job(db, add_job(db, rows.attachment_id, JobType.SCAN)).state is JobState.COMPLETE
    with db.read() as s:
        job_id = s.scalar(select(Job.id).where(Job.type == JobType.PACK))

    class TakeOver(StopSignal):
        def is_set(self) -> bool:  # another worker claims the job while we pack
            with db.write() as s:
                s.execute(update(Job).where(Job.id == job_id).values(worker_id=None))
            return False

    def arm(ctx: JobContext) -> None:
        ctx.stop = TakeOver()

    assert job_id is not None
    run = run_job(db, job_id, before=arm)
    assert "not processing by" in str(run.error)
    assert cars(db) == [] and out_files(tmp_path) == []


def test_inline_preparation_records_the_piece_without_a_file(db: Database, tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_files(source, {"a.bin": 10})
    rows = make_local_preparation(db, "p", source, None)
    runs = scan_and_pack(db, rows.attachment_id)
    assert [r.state for r in runs] == [JobState.COMPLETE]
    (car,) = cars(db)
    assert car.storage_id is None and car.storage_path == ""
    # Padded to the 1 MiB minimum piece like a written CAR; the zeros are not stored anywhere.
    assert car.piece_size == 1 << 20 and car.file_size == (1 << 20) * 127 // 128
    with db.read() as s:
        assert described_blocks(s) == 1
    assert not any(p.suffix in (".car", ".part") for p in tmp_path.rglob("*"))
    # A re-run finds the recorded row and keeps it.
    rerun = run_job(db, runs[0].job_id)
    assert rerun.state is JobState.COMPLETE and [c.id for c in cars(db)] == [car.id]


def test_no_inline_without_an_output_is_refused(db: Database, tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_files(source, {"a.bin": 10})
    rows = make_local_preparation(db, "p", source, None, no_inline=True)
    runs = scan_and_pack(db, rows.attachment_id)
    assert [r.state for r in runs] == [JobState.ERROR]
    assert "has no output storage but is no-inline" in str(runs[0].error)


def test_no_inline_writes_no_car_blocks(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"a.bin": 3000}, no_inline=True)
    scan_and_pack(db, rows.attachment_id)
    assert len(cars(db)) == 1
    with db.read() as s:
        assert described_blocks(s) == 0


def test_delete_after_export_removes_finalised_sources(db: Database, tmp_path: Path) -> None:
    rows = prepare(db, tmp_path, {"a.bin": 3000, "d/b.bin": 10}, delete_after_export=True)
    scan_and_pack(db, rows.attachment_id)
    assert not (tmp_path / "src" / "a.bin").exists()
    assert not (tmp_path / "src" / "d" / "b.bin").exists()


def test_small_pages_and_batches_record_the_same_tree(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ranges read 3 per query, rows sent 2 per executemany, directories updated ~4 files at a
    # time: the recorded rows must be those of one big batch.
    monkeypatch.setattr(pack_module, "RANGE_PAGE", 3)
    monkeypatch.setattr(pack_record, "INSERT_BATCH", 2)
    monkeypatch.setattr(pack_record, "DIRECTORY_BATCH", 4)
    files: dict[str, int | bytes] = {
        f"d{d}/f{i}.bin": 100 + 37 * i for d in range(3) for i in range(7)
    }
    files |= {"top.bin": 2 * MIB + 5, "d1/e/deep.bin": 0}
    rows = prepare(db, tmp_path, files)
    (run,) = scan_and_pack(db, rows.attachment_id)
    assert run.state is JobState.COMPLETE
    expected = reference_root(tmp_path / "src", DEFAULT_RANGE_SIZE)
    assert expected is not None
    with db.read() as s:
        root_cid = s.scalar(select(Directory.cid).where(Directory.parent_id.is_(None)))
        file_cids = {p: c for p, c in s.execute(select(File.path, file_cid()))}
        blocks = s.execute(
            select(CarBlock.file_id, CarBlock.file_offset, CarBlock.raw_block.is_(None))
        ).all()
        (car,) = cars(db)
    assert root_cid == expected[0]
    assert len(file_cids) == len(files) and None not in file_cids.values()
    assert file_cids["d2/f3.bin"] == raw_cid((tmp_path / "src" / "d2" / "f3.bin").read_bytes())
    assert car.num_of_files == len(files)
    # Three leaves and one node for the 2 MiB file; each small file is one leaf kept on its range.
    assert len(blocks) == 4
    assert sum(1 for _, _, leaf in blocks if not leaf) == 1
    with db.read() as s:
        assert described_blocks(s) == len(files) - 1 + 4


def test_skipped_and_unknown_length_ranges_go_through_the_spool(
    db: Database, tmp_path: Path
) -> None:
    rows = prepare(db, tmp_path, {"a.bin": 10, "b.bin": 20}, min_piece_size=128)
    assert run_job(db, add_job(db, rows.attachment_id, JobType.SCAN)).state is JobState.COMPLETE
    with db.write() as s:
        s.execute(update(FileRange).values(length=-1))
        s.execute(update(File).values(size=-1))
    (run,) = run_ready_jobs(db, JobType.PACK)
    assert run.state is JobState.COMPLETE
    with db.read() as s:
        assert sorted((p, n) for p, n in s.execute(select(File.path, File.size))) == [
            ("a.bin", 10),
            ("b.bin", 20),
        ]
        assert sorted(s.scalars(select(FileRange.length))) == [10, 20]
