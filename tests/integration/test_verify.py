"""`dataset-worker verify`: the real CLI over a real preparation, clean and then corrupted.

The preparation is built in process (scan, pack, daggen), the verification runs as a subprocess
of the installed console script, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import commp_of
from dataset_worker.db import Database
from dataset_worker.db.models import (
    Car,
    CarBlock,
    File,
    FileRange,
    JobState,
    JobType,
    PieceType,
    Storage,
)
from tests.support.jobs import (
    add_job,
    make_local_preparation,
    run_ready_jobs,
    scan_and_pack,
    write_files,
)
from tests.support.preps import described_blocks, leaf_block_row

MIB = 1 << 20
CLI = Path(sys.executable).with_name("dataset-worker")
NAME = "checked"

# A file split over three pieces by the 1 MB max size, small ones, an empty one, a subfolder.
TREE: dict[str, int | bytes] = {
    "a.txt": 5000,
    "big.bin": 2 * MIB + 12345,
    "empty.bin": b"",
    "sub/c.txt": b"hello verify",
    "sub/deeper/d.bin": 70_000,
}


@dataclass(frozen=True)
class Prepared:
    """A finished preparation: where things are and what the database says."""

    database_url: str
    tmp_path: Path
    source: Path
    output: Path
    cars: int
    blocks: int
    car_bytes: int


@pytest.fixture
def prepared(db: Database, database_url: str, tmp_path: Path) -> Prepared:
    """Scan, pack and daggen TREE with a 1 MB max size, every job complete."""
    source, output = tmp_path / "source", tmp_path / "cars"
    write_files(source, TREE)
    rows = make_local_preparation(db, NAME, source, output, max_size=1_000_000)
    packs = scan_and_pack(db, rows.attachment_id)
    assert packs and all(run.state is JobState.COMPLETE for run in packs), packs
    add_job(db, rows.attachment_id, JobType.DAGGEN)
    dag = run_ready_jobs(db, JobType.DAGGEN, attachment_id=rows.attachment_id)
    assert [run.state for run in dag] == [JobState.COMPLETE], dag
    with db.read() as session:
        cars = session.scalar(select(func.count()).select_from(Car)) or 0
        blocks = described_blocks(session)
        car_bytes = session.scalar(select(func.sum(Car.file_size))) or 0
    assert cars >= 4  # three pieces for big.bin at least, plus the DAG piece
    return Prepared(database_url, tmp_path, source, output, cars, blocks, car_bytes)


def verify(prepared: Prepared, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console script against the test database."""
    command = [str(CLI), "--state-dir", str(prepared.tmp_path / "state")]
    command += ["--database-url", prepared.database_url, "verify", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASET_WORKER_")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def verify_json(prepared: Prepared, *args: str, code: int) -> Any:
    """`verify --json`, checking the exit code; returns the parsed report."""
    result = verify(prepared, NAME, "--json", *args)
    assert result.returncode == code, result.stdout + result.stderr
    return json.loads(result.stdout)


def kinds(report: Any) -> set[str]:
    """The kinds of the report's problems."""
    return {problem["kind"] for problem in report["problems"]}


def car_rows(db: Database, piece_type: PieceType = PieceType.DATA) -> list[tuple[Car, Path]]:
    """(row, CAR path) of every piece of one type, largest CAR first."""
    with db.read() as session:
        rows = session.execute(
            select(Car, Storage.path)
            .join(Storage, Storage.id == Car.storage_id)
            .where(Car.piece_type == piece_type)
            .order_by(Car.file_size.desc(), Car.id)
        )
        return [(car, Path(root) / car.storage_path) for car, root in rows]


# --- clean ----------------------------------------------------------------------------------------


def test_a_clean_preparation_verifies_with_every_count(prepared: Prepared) -> None:
    report = verify_json(prepared, code=0)
    assert report["ok"] is True and report["problems"] == []
    summary = report["summary"]
    assert summary["piecesChecked"] == prepared.cars and summary["piecesSkipped"] == 0
    assert summary["blocks"] == prepared.blocks
    assert summary["bytes"] == prepared.car_bytes
    assert summary["files"] is None  # not --deep
    assert {piece["pieceType"] for piece in report["pieces"]} == {"data", "dag"}

    text = verify(prepared, NAME)
    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.strip() == (
        f'verify "{NAME}": {prepared.cars} pieces checked, {prepared.blocks} blocks, '
        f"{prepared.car_bytes} bytes: OK"
    )


def test_deep_rebuilds_every_file_including_the_empty_one(prepared: Prepared) -> None:
    report = verify_json(prepared, "--deep", code=0)
    assert report["summary"]["files"] == len(TREE)
    assert report["summary"]["fileBytes"] == sum(
        len(v) if isinstance(v, bytes) else v for v in TREE.values()
    )
    assert report["rootCid"]

    text = verify(prepared, NAME, "--deep")
    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.strip().endswith(f"{len(TREE)} files compared: OK")


def test_the_preparation_can_be_named_by_id(prepared: Prepared, db: Database) -> None:
    with db.read() as session:
        prep_id = session.scalar(select(Car.preparation_id).limit(1))
    result = verify(prepared, str(prep_id))
    assert result.returncode == 0, result.stdout + result.stderr


# --- corrupted ------------------------------------------------------------------------------------


def test_a_flipped_byte_inside_a_block_names_the_block_and_car(
    prepared: Prepared, db: Database
) -> None:
    car, path = car_rows(db)[0]
    with db.read() as session:
        block = session.scalars(
            select(CarBlock)
            .where(CarBlock.car_id == car.id, CarBlock.car_block_length > 1000)
            .order_by(CarBlock.car_offset)
            .limit(1)
        ).first()
        if block is None:  # the piece's big blocks are all files of one leaf, kept on ranges
            leaf = session.scalars(
                select(FileRange)
                .where(FileRange.job_id == car.job_id, FileRange.car_offset.is_not(None))
                .where(FileRange.length > 1000)
                .order_by(FileRange.car_offset)
                .limit(1)
            ).one()
            block = leaf_block_row(leaf, car.id)
        owner = session.scalar(select(File.path).where(File.id == block.file_id))
    data_offset = block.car_offset + len(block.varint) + len(block.cid)
    with open(path, "r+b") as stream:
        stream.seek(data_offset + 100)
        byte = stream.read(1)
        stream.seek(data_offset + 100)
        stream.write(bytes([byte[0] ^ 0xFF]))

    report = verify_json(prepared, code=1)
    hashes = [p for p in report["problems"] if p["kind"] == "block-hash"]
    assert len(hashes) == 1, report["problems"]
    assert hashes[0]["blockCid"] == cid_to_str(block.cid)
    assert hashes[0]["carPath"] == str(path)
    assert hashes[0]["pieceCid"] == cid_to_str(car.piece_cid)
    # The piece CID no longer matches either; framing and size are intact.
    assert "piece-cid" in kinds(report) and not {"car-framing", "car-size"} & kinds(report)

    text = verify(prepared, NAME)
    assert text.returncode == 1
    assert f"problem block-hash: block at offset {block.car_offset}" in text.stdout
    assert f"    block: {cid_to_str(block.cid)}" in text.stdout
    assert f"    car: {path}" in text.stdout
    assert text.stdout.rstrip().splitlines()[-1].endswith("problems")

    # --deep cannot rebuild the file that block belongs to, and says which one.
    deep = verify_json(prepared, "--deep", code=1)
    unreadable = [p for p in deep["problems"] if p["kind"] == "file-unreadable"]
    assert [p["filePath"] for p in unreadable] == [owner]
    assert unreadable[0]["blockCid"] == cid_to_str(block.cid)


def test_a_truncated_car_is_a_framing_and_size_error(prepared: Prepared, db: Database) -> None:
    car, path = car_rows(db)[0]
    os.truncate(path, car.file_size // 2)

    report = verify_json(prepared, code=1)
    problems = [p for p in report["problems"] if p.get("carPath") == str(path)]
    by_kind = {p["kind"]: p for p in problems}
    assert {"car-framing", "car-size", "piece-cid"} <= set(by_kind), problems
    assert "truncated" in by_kind["car-framing"]["message"]
    assert f"{car.file_size // 2} bytes" in by_kind["car-size"]["message"]
    assert all(p["pieceCid"] == cid_to_str(car.piece_cid) for p in problems)
    # The other pieces are still clean.
    assert {p["carPath"] for p in report["problems"]} == {str(path)}


def test_a_changed_piece_cid_row_is_a_piece_cid_mismatch(prepared: Prepared, db: Database) -> None:
    car, path = car_rows(db)[-1]
    wrong = piece_cid(commp_of(b"not this piece" * 10).commitment)
    with db.write() as session:
        session.execute(update(Car).where(Car.id == car.id).values(piece_cid=wrong))

    report = verify_json(prepared, code=1)
    mismatches = [p for p in report["problems"] if p["kind"] == "piece-cid"]
    assert len(mismatches) == 1, report["problems"]
    assert mismatches[0]["pieceCid"] == cid_to_str(wrong)
    assert mismatches[0]["carPath"] == str(path)
    assert cid_to_str(car.piece_cid) in mismatches[0]["message"]  # what commP really gives
    # The file is still found by its recorded path, whose name no longer matches the row.
    assert kinds(report) == {"piece-cid", "car-name"}


def test_deep_names_a_source_file_changed_in_place(prepared: Prepared) -> None:
    target = prepared.source / "sub" / "deeper" / "d.bin"
    data = bytearray(target.read_bytes())
    data[12_345] ^= 0x01
    target.write_bytes(bytes(data))

    verify_json(prepared, code=0)  # the pieces themselves are still fine
    report = verify_json(prepared, "--deep", code=1)
    assert [(p["kind"], p["filePath"]) for p in report["problems"]] == [
        ("file-content", "sub/deeper/d.bin")
    ]
    assert report["summary"]["files"] == len(TREE)

    text = verify(prepared, NAME, "--deep")
    assert text.returncode == 1
    assert "problem file-content: sub/deeper/d.bin" in text.stdout


def test_deep_names_files_missing_on_either_side(prepared: Prepared) -> None:
    (prepared.source / "a.txt").unlink()
    (prepared.source / "sub" / "new.txt").write_bytes(b"added after the scan")

    report = verify_json(prepared, "--deep", code=1)
    assert sorted((p["kind"], p["filePath"]) for p in report["problems"]) == [
        ("file-not-in-dag", "sub/new.txt"),
        ("file-not-in-source", "a.txt"),
    ]


def test_a_missing_car_is_named(prepared: Prepared, db: Database) -> None:
    _car, path = car_rows(db, PieceType.DAG)[0]
    path.unlink()
    report = verify_json(prepared, code=1)
    assert [(p["kind"], p["carPath"]) for p in report["problems"]] == [("car-missing", str(path))]
    # Without the DAG piece the directory nodes are gone: --deep says which.
    deep = verify_json(prepared, "--deep", code=1)
    assert "dag-structure" in kinds(deep)


# --- cannot verify --------------------------------------------------------------------------------


def test_an_unknown_preparation_exits_2_with_a_message(prepared: Prepared) -> None:
    result = verify(prepared, "no-such-prep")
    assert result.returncode == 2
    assert 'preparation "no-such-prep" not found' in result.stderr
    assert result.stdout == ""
    assert verify(prepared, "999999").returncode == 2


def test_deep_without_a_dag_piece_says_daggen_is_needed(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    write_files(source, {"x.bin": 3000})
    rows = make_local_preparation(db, NAME, source, tmp_path / "cars", max_size=1_000_000)
    scan_and_pack(db, rows.attachment_id)
    prepared = Prepared(database_url, tmp_path, source, tmp_path / "cars", 1, 0, 0)

    assert verify_json(prepared, code=0)["summary"]["piecesChecked"] == 1
    report = verify_json(prepared, "--deep", code=1)
    assert kinds(report) == {"dag-missing"}
    assert "start-daggen" in report["problems"][0]["message"]


def test_deep_on_a_no_dag_preparation_is_a_usage_error(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    write_files(source, {"x.bin": 3000})
    rows = make_local_preparation(
        db, NAME, source, tmp_path / "cars", max_size=1_000_000, no_dag=True
    )
    scan_and_pack(db, rows.attachment_id)
    prepared = Prepared(database_url, tmp_path, source, tmp_path / "cars", 1, 0, 0)

    assert verify(prepared, NAME).returncode == 0
    result = verify(prepared, NAME, "--deep")
    assert result.returncode == 2
    assert "--no-dag" in result.stderr


def test_verify_does_not_load_the_writer_side() -> None:
    # An independent check must share no code with what it checks (the CLI package itself loads
    # the worker for `run`, so the verify package is imported on its own).
    code = (
        "import sys, dataset_worker.verify.preparation, dataset_worker.verify.readback\n"
        "print(sorted(m for m in sys.modules if m.startswith(("
        "'dataset_worker.worker', 'dataset_worker.content.car', "
        "'dataset_worker.content.packer', 'dataset_worker.content.chunker'))))"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
