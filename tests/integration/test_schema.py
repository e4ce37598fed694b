from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import SAWarning

from dataset_worker.db import Database, open_database
from dataset_worker.db.migrate import head_revision
from dataset_worker.db.models import Base


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
