"""Inline preparations: pack and daggen record pieces without CAR files, and the rebuilt bytes
are the CAR files a preparation with an output writes, byte for byte (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from dataset_worker.content.car import car_header
from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import commp_of, finalize
from dataset_worker.db import Database
from dataset_worker.db.blockrows import block_rows
from dataset_worker.db.models import Car, CarBlock, FileRange
from dataset_worker.db.nodebytes import node_bytes
from dataset_worker.pieces.inline import (
    BlocksInconsistent,
    InlinePieceReader,
    SourceBytesMismatch,
    SourceFileChanged,
    load_inline_car,
    open_inline_piece,
    source_of_car,
)
from tests.integration.inline_support import Twins, prepare_twins, rewrite_in_place
from tests.integration.provider_support import fresh_database_url
from tests.support.preps import leaf_block_row


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def prepared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, Twins]]:
    """The tree prepared inline and written, on each database (read-only tests)."""
    folder = tmp_path_factory.mktemp("inline")
    url = fresh_database_url(request.param, request, folder)
    twins = prepare_twins(url, folder)
    db = Database(url)
    yield db, twins
    db.dispose()


def test_inline_rows_have_no_file_and_the_dag_piece_is_all_stored_blocks(
    prepared: tuple[Database, Twins],
) -> None:
    db, twins = prepared
    kinds = {t.piece_type for t in twins.twins}
    assert kinds == {"data", "dag"} and len(twins.twins) >= 4
    with db.read() as session:
        for twin in twins.twins:
            car = session.get(Car, twin.car_id)
            assert car is not None and car.storage_id is None and car.storage_path == ""
            rows = session.execute(
                select(CarBlock.raw_block, CarBlock.raw_block_zlib, CarBlock.file_id).where(
                    CarBlock.car_id == twin.car_id
                )
            ).all()
            leaves = session.scalar(
                select(func.count()).where(
                    FileRange.job_id == car.job_id, FileRange.car_offset.is_not(None)
                )
            )
            if twin.piece_type == "dag":
                assert rows and all(
                    node_bytes(raw, zipped) is not None and file_id is None
                    for raw, zipped, file_id in rows
                )
                assert car.job_id is None
            else:  # leaves read from the source: rows pointing into files, or one-leaf ranges
                assert leaves or any(file_id is not None for _, _, file_id in rows)


def test_every_inline_piece_rebuilds_to_the_written_car_file(
    prepared: tuple[Database, Twins],
) -> None:
    db, twins = prepared
    padded = {t.piece_type for t in twins.twins if t.padded}
    assert padded == {"data", "dag"}  # min-piece padding is rebuilt too
    assert any(not t.padded for t in twins.twins if t.piece_type == "data")
    for twin in twins.twins:
        expected = twin.car_file.read_bytes()
        reader = open_inline_piece(db, twin.car_id)
        rebuilt = b"".join(reader.iter_chunks(chunk=300_000))
        assert len(rebuilt) == twin.file_size == len(expected)
        assert rebuilt == expected, twin.cid
        commitment, _ = finalize(commp_of(rebuilt), twin.piece_size)
        assert cid_to_str(piece_cid(commitment)) == twin.cid
        root = load_inline_car(db, twin.car_id).root_cid
        assert rebuilt.startswith(car_header(root))


def test_ranged_reads_in_any_order_match_the_file(prepared: tuple[Database, Twins]) -> None:
    db, twins = prepared
    chooser = random.Random(7)
    for twin in twins.twins:
        expected = twin.car_file.read_bytes()
        car = load_inline_car(db, twin.car_id)
        # A tiny page makes every read cross query pages.
        reader = InlinePieceReader(db, car, source_of_car(db, twin.car_id), page=3)
        spans = [(0, 1), (0, 59), (58, 3), (len(expected) - 1, 10), (len(expected), 5)]
        for _ in range(25):
            start = chooser.randrange(len(expected))
            spans.append((start, chooser.randrange(1, 400_000)))
        for start, length in spans:
            assert reader.pread(start, length) == expected[start : start + length], (start, length)


def test_a_changed_source_file_is_reported_never_served(database_url: str, tmp_path: Path) -> None:
    twins = prepare_twins(database_url, tmp_path)
    db = Database(database_url)
    try:
        twin = twins.with_file("dir1/nested/deep/file.dat")
        path = twins.source / "dir1/nested/deep/file.dat"
        original, scanned = path.read_bytes(), path.stat().st_mtime_ns
        reader = open_inline_piece(db, twin.car_id)
        assert reader.check([(0, reader.size)]) >= 1

        path.write_bytes(original + b"!")  # size and mtime change
        with pytest.raises(SourceFileChanged, match="has changed since it was scanned") as info:
            reader.check([(0, reader.size)])
        assert info.value.file == "dir1/nested/deep/file.dat"

        path.write_bytes(original)
        rewrite_in_place(path, bytes(len(original)), scanned)  # same size, mtime put back
        reader = open_inline_piece(db, twin.car_id)
        reader.check([(0, reader.size)])  # size and mtime cannot tell...
        with pytest.raises(SourceBytesMismatch, match="changed in place") as mismatch:
            b"".join(reader.iter_chunks())
        assert mismatch.value.file == "dir1/nested/deep/file.dat"  # ...the CIDs can
    finally:
        db.dispose()


def test_missing_block_rows_are_an_error_never_short_bytes(
    database_url: str, tmp_path: Path
) -> None:
    twins = prepare_twins(database_url, tmp_path)
    db = Database(database_url)
    try:
        twin = max((t for t in twins.twins if not t.padded), key=lambda t: t.file_size)
        with db.read() as session:
            job_id = session.scalar(select(Car.job_id).where(Car.id == twin.car_id))
            offsets = sorted(
                [
                    *session.scalars(
                        select(CarBlock.car_offset).where(CarBlock.car_id == twin.car_id)
                    ),
                    *session.scalars(
                        select(FileRange.car_offset).where(
                            FileRange.job_id == job_id, FileRange.car_offset.is_not(None)
                        )
                    ),
                ]
            )
        assert len(offsets) >= 3
        _drop_block(db, twin.car_id, job_id, offsets[1])
        with pytest.raises(BlocksInconsistent, match="do not chain up"):
            b"".join(open_inline_piece(db, twin.car_id).iter_chunks())
        _drop_block(db, twin.car_id, job_id, offsets[-1])
        reader = open_inline_piece(db, twin.car_id)
        with pytest.raises(BlocksInconsistent, match="rows are missing"):
            reader.pread(offsets[-2], twin.file_size)
    finally:
        db.dispose()


def _drop_block(db: Database, car_id: int, job_id: int | None, offset: int) -> None:
    """Forget the block at `offset`: its `car_blocks` row, or the place a one-leaf range keeps."""
    with db.write() as session:
        session.execute(
            delete(CarBlock).where(CarBlock.car_id == car_id, CarBlock.car_offset == offset)
        )
        session.execute(
            update(FileRange)
            .where(FileRange.job_id == job_id, FileRange.car_offset == offset)
            .values(car_offset=None)
        )


def test_leaves_recorded_as_block_rows_before_0010_rebuild_the_same_bytes(
    database_url: str, tmp_path: Path
) -> None:
    # Databases recorded before migration 0010 keep a car_blocks row for every leaf. Turn every
    # one-leaf range back into such a row: each piece must rebuild to the same bytes, and the
    # blocks counted per piece must not change.
    twins = prepare_twins(database_url, tmp_path)
    db = Database(database_url)
    try:
        with db.read() as session:
            before = block_rows(session, Car.id.is_not(None))
        with db.write() as session:
            leaves = session.execute(
                select(FileRange, Car.id)
                .join(Car, Car.job_id == FileRange.job_id)
                .where(FileRange.car_offset.is_not(None))
            ).all()
            assert len(leaves) > 10
            session.add_all(leaf_block_row(leaf, car_id) for leaf, car_id in leaves)
            session.execute(update(FileRange).values(car_offset=None))
        with db.read() as session:
            assert block_rows(session, Car.id.is_not(None)) == before
        for twin in twins.twins:
            rebuilt = b"".join(open_inline_piece(db, twin.car_id).iter_chunks())
            assert rebuilt == twin.car_file.read_bytes(), twin.cid
    finally:
        db.dispose()
