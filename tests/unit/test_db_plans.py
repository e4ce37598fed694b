"""db/plans.py: a pack job's short queries run without parallel workers or JIT on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from dataset_worker.db import Database
from dataset_worker.db.plans import serial_plans


def _settings(db: Database) -> tuple[str, str]:
    with db.read() as session:
        workers = session.scalar(text("SHOW max_parallel_workers_per_gather"))
        jit = session.scalar(text("SHOW jit"))
    assert isinstance(workers, str) and isinstance(jit, str)
    return workers, jit


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgresql_plans_serially_for_the_transaction_only(db: Database) -> None:
    before = _settings(db)
    assert before[0] != "0"  # the server's default, which the test must see change
    with db.read() as session:
        serial_plans(session)
        assert session.scalar(text("SHOW max_parallel_workers_per_gather")) == "0"
        assert session.scalar(text("SHOW jit")) == "off"
    assert _settings(db) == before  # the pooled connection is back to the defaults


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_gets_no_statement(db: Database) -> None:
    sent: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    with db.read() as session:
        session.connection()  # the transaction's own BEGIN goes out before the count
        sent.clear()
        serial_plans(session)
    assert sent == []
