"""car_blocks rows are found by CID through an index of 8 digest bytes (db/cidkey.py), on SQLite
and PostgreSQL: the planner uses that index, and a key shared by two CIDs finds only the one
asked for."""

from __future__ import annotations

from sqlalchemy import insert, select, text

from dataset_worker.db import Database
from dataset_worker.db.cidkey import cid_in, cid_key
from dataset_worker.db.models import Car, CarBlock, PieceType

RAW = bytes.fromhex("01551220")


def test_car_blocks_are_found_by_cid_through_the_key_index(db: Database) -> None:
    """The lookup's own expression matches the index's, so the planner uses it."""
    cid = RAW + bytes(range(32))
    query = CarBlock.__table__.select().where(cid_in(CarBlock.cid, [cid]))
    with db.engine.connect() as connection:
        compiled = query.compile(connection, compile_kwargs={"render_postcompile": True})
        if connection.dialect.name == "sqlite":
            params = tuple(compiled.params[name] for name in compiled.positiontup or ())
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params).all()
            detail = " ".join(str(row[-1]) for row in plan)
        else:
            connection.execute(text("SET enable_seqscan = off"))  # an empty table: else a scan
            plan = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).all()
            detail = " ".join(str(row[0]) for row in plan)
    assert "ix_car_blocks_cid_key" in detail, detail


def test_a_shared_key_finds_only_the_cid_asked_for(db: Database) -> None:
    asked = RAW + bytes(range(32))
    twin = RAW + bytes(range(8)) + bytes(24)  # the same 8 key bytes, another digest
    other = RAW + bytes(range(100, 132))
    assert cid_key(asked) == cid_key(twin) != cid_key(other)
    with db.write() as session:
        car = session.execute(
            insert(Car)
            .values(piece_type=PieceType.DATA, piece_cid=b"p", piece_size=1, root_cid=asked,
                    file_size=1)
            .returning(Car.id)
        ).scalar_one()  # fmt: skip
        for offset, cid in enumerate((asked, twin, other, asked)):
            session.execute(
                insert(CarBlock).values(cid=cid, car_offset=offset, car_block_length=1,
                                        varint=b"\x01", car_id=car)
            )  # fmt: skip
    with db.read() as session:
        found = session.execute(
            select(CarBlock.cid, CarBlock.car_offset)
            .where(cid_in(CarBlock.cid, [asked, other]))
            .order_by(CarBlock.car_offset)
        ).all()
    assert [(cid, offset) for cid, offset in found] == [(asked, 0), (other, 2), (asked, 3)]
