"""`prep create --max-size` below 1 MiB warns how many pack jobs the source will make, and the
estimate is close to what the scan then plans (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from dataset_worker.cli import app
from dataset_worker.db import Database
from dataset_worker.db.models import Job, JobType, Preparation, SourceAttachment
from tests.support.jobs import run_ready_jobs, write_files


def test_a_small_max_size_warns_how_many_pack_jobs(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    files: dict[str, int | bytes] = {f"d/f{i}.bin": 3000 + 977 * i for i in range(40)}
    write_files(source, files | {"big.bin": 300_000})
    args = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url, "prep"]
    args += ["create", "--name", "tiny", "--source", str(source), "--output", str(tmp_path / "o")]
    args += ["--max-size", "4000", "--min-piece-size", "4KiB", "--no-auto"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    found = re.search(
        r"warning: maxSize .* is below 1 MiB: .* about ([\d,]+) pack jobs", result.output
    )
    assert found is not None, result.output
    estimate = int(found.group(1).replace(",", ""))

    with db.read() as session:
        attachment = session.scalar(
            select(SourceAttachment.id)
            .join(Preparation, Preparation.id == SourceAttachment.preparation_id)
            .where(Preparation.name == "tiny")
        )
    assert attachment is not None
    CliRunner().invoke(app, [*args[:4], "prep", "start-scan", "tiny"])
    run_ready_jobs(db, JobType.SCAN, attachment_id=attachment)
    with db.read() as session:
        planned = session.scalar(
            select(func.count()).where(Job.type == JobType.PACK, Job.attachment_id == attachment)
        )
    assert planned is not None and planned > 100
    assert abs(estimate - planned) <= planned // 5, (estimate, planned)

    # 1 MiB and up: no warning.
    args[args.index("tiny")] = "roomy"
    args[args.index("4000")] = "1.5MiB"
    quiet = CliRunner().invoke(app, args)
    assert quiet.exit_code == 0 and "warning" not in quiet.output, quiet.output
