"""Alembic environment: runs on the connection handed over by dataset_worker.db.migrate."""

from __future__ import annotations

from alembic import context

from dataset_worker.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
