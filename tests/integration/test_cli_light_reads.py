"""`jobs list` and `prep status` read with SQLAlchemy Core and print JSON-ready data: no ORM, no
pydantic in the process, and the very JSON the views would give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from typer.testing import CliRunner

from dataset_worker.cli import app
from dataset_worker.content.cid import cid_to_str, dag_pb_cid, raw_cid
from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobState, JobType, PieceType, Preparation
from dataset_worker.prep import JobPage, PreparationStatus, list_jobs
from dataset_worker.prep.jobs import job_page_data, parse_jobs_query
from dataset_worker.prep.status import preparation_status_data
from tests.integration.test_prep_status import _car, _file, _prep

# What the two commands must not load (each costs tens of milliseconds at start-up).
HEAVY = ("sqlalchemy.orm", "pydantic", "dataset_worker.db.models", "dataset_worker.prep.views")


def _filled(db: Database, tmp_path: Path) -> tuple[int, int]:
    """Preparation "p" with jobs of every type and state, files, ranges and pieces; returns
    (attachment id, the id of a pack job waiting for a retry)."""
    prep_id, attachment, root = _prep(db, tmp_path, "p")
    started = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    retry_at = datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC)
    with db.write() as session:
        rows = [
            {"type": job_type, "state": state, "attachment_id": attachment,
             "error_message": "", "error_stack_trace": "", "started_at": started}
            for job_type in JobType
            for state in JobState
        ]  # fmt: skip
        session.execute(insert(Job), rows)
        waiting = Job(
            type=JobType.PACK, state=JobState.READY, attachment_id=attachment, attempts=2,
            next_attempt_at=retry_at, error_message="[bold]disk[/bold] full",
            last_worker_id="abcdef0123", last_worker_host="node-7",
        )  # fmt: skip
        session.add(waiting)
        session.flush()
        _file(session, attachment, root, "a.bin", [(100, True), (50, False)])
        _file(session, attachment, root, "unknown.bin", [])
        session.add(_car(prep_id, attachment, PieceType.DATA, 1, raw_cid(b"a"), None))
        session.add(_car(prep_id, attachment, PieceType.DAG, 2, dag_pb_cid(b"root"), None))
        return attachment, waiting.id


def test_status_data_is_the_views_json(db: Database, tmp_path: Path) -> None:
    _filled(db, tmp_path)
    with db.read() as session:
        prep_id = session.scalars(select(Preparation.id)).one()
    for key in ("p", str(prep_id)):
        data = preparation_status_data(db, key)
        dumped = PreparationStatus.model_validate(data).model_dump(mode="json", by_alias=True)
        # Same keys in the same order and the same JSON types: the printed text is the same.
        assert json.dumps(data) == json.dumps(dumped)
    assert (data["filesScanned"], data["bytesScanned"], data["bytesPacked"]) == (2, 150, 100)
    assert data["jobs"]["pack"]["ready"] == 2 and data["pieces"] == 2
    assert data["rootCid"] == cid_to_str(dag_pb_cid(b"root"))


def test_jobs_page_data_is_the_views_json(db: Database, tmp_path: Path) -> None:
    _filled(db, tmp_path)
    many: list[dict[str, Any]] = [{}, {"status": "ready", "preparation": "p"}, {"limit": 3}]
    for filters in many:
        data = job_page_data(db, parse_jobs_query(**filters))
        page = list_jobs(db, **filters)
        assert json.dumps(data) == json.dumps(page.model_dump(mode="json", by_alias=True))
        assert JobPage.model_validate(data) == page


def test_jobs_list_table_from_the_data(database_url: str, db: Database, tmp_path: Path) -> None:
    _, waiting = _filled(db, tmp_path)
    root = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url]
    result = CliRunner().invoke(app, [*root, "jobs", "list", "--type", "pack", "--limit", "3"])
    assert result.exit_code == 0, result.output
    line = next(row for row in result.stdout.splitlines() if f" {waiting} " in row)
    assert "ready (retry at 2024-05-01 12:00:03)" in line and "[bold]disk[/bold] full" in line
    assert "abcdef01@node-7" in line and " 2 " in line
    started = next(row for row in result.stdout.splitlines() if "complete" in row)
    assert "2024-05-01 12:00:00" in started  # whole seconds, as before
    assert "more: --cursor" in result.stdout


def _loaded_by(database_url: str, *args: str) -> tuple[str, list[str]]:
    """Run the CLI in a fresh Python; its output and which HEAVY modules it loaded."""
    code = (
        "import sys\n"
        "from dataset_worker.cli import main\n"
        f"sys.argv = ['dataset-worker', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print('LOADED', *sorted(set({HEAVY!r}) & set(sys.modules)), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASET_WORKER_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "DATASET_WORKER_DATABASE_URL": database_url},
    )
    assert result.returncode == 0, result.stderr
    marker = next(line for line in result.stderr.splitlines() if line.startswith("LOADED"))
    return result.stdout, marker.split()[1:]


def test_the_commands_load_no_orm_and_no_pydantic(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    _filled(db, tmp_path)
    state = tmp_path / "state"
    for args in (
        ["jobs", "list"],
        ["jobs", "list", "--json", "--prep", "p", "--status", "ready"],
        ["prep", "status", "p"],
        ["prep", "status", "p", "--json"],
    ):
        output, loaded = _loaded_by(database_url, "--state-dir", str(state), *args)
        assert loaded == [], (args, loaded)
        assert "pack" in output
