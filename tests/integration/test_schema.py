from __future__ import annotations

import warnings

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select, text
from sqlalchemy.exc import SAWarning

from dataset_worker.db import Database, open_database
from dataset_worker.db.migrate import alembic_config, head_revision
from dataset_worker.db.models import Base, Car, CarBlock, PieceType
from dataset_worker.db.nodebytes import stored_node
from tests.support.nodes import names_node


def test_migrations_match_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == head_revision()
        with warnings.catch_warnings():
            # SQLite's reflection cannot read an expression index (ix_car_blocks_cid_key): the
            # next test checks that one.
            warnings.filterwarnings(
                "ignore", "Skipped unsupported reflection of expression-based index", SAWarning
            )
            warnings.filterwarnings(
                "ignore", "autogenerate skipping metadata-specified expression-based index"
            )
            assert compare_metadata(context, Base.metadata) == []


def test_opening_twice_is_a_noop(database_url: str) -> None:
    open_database(database_url).dispose()
    again = open_database(database_url)
    with again.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    again.dispose()


def test_downgrading_past_0011_puts_compressed_nodes_back_raw(database_url: str) -> None:
    db = open_database(database_url)
    node = names_node(300)
    zipped = stored_node(node)[1]
    assert zipped is not None
    with db.write() as session:
        car_id = session.execute(
            insert(Car)
            .values(piece_type=PieceType.DAG, piece_cid=b"p", piece_size=128, root_cid=b"r")
            .values(file_size=1)
            .returning(Car.id)
        ).scalar_one()
        values = {"car_offset": 0, "car_block_length": 1, "varint": b"\x01", "car_id": car_id}
        session.execute(insert(CarBlock).values(cid=b"zipped", raw_block_zlib=zipped, **values))
        session.execute(insert(CarBlock).values(cid=b"raw", raw_block=b"as is", **values))
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0010")
        rows = connection.execute(text("SELECT cid, raw_block FROM car_blocks ORDER BY cid"))
        assert sorted(tuple(row) for row in rows) == [(b"raw", b"as is"), (b"zipped", node)]
        # The CID-key index outlives the table copy SQLite's downgrade makes.
        # (Asked of the catalog: SQLite's reflection does not list expression indexes.)
        catalog = (
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'car_blocks'"
            if connection.dialect.name == "sqlite"
            else "SELECT indexname FROM pg_indexes WHERE tablename = 'car_blocks'"
        )
        assert "ix_car_blocks_cid_key" in set(connection.scalars(text(catalog)))
        command.upgrade(alembic_config(connection), "head")
    with db.read() as session:
        assert session.scalar(select(CarBlock.raw_block_zlib).where(CarBlock.cid == b"raw")) is None
    db.dispose()
