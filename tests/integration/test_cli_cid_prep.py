"""`dataset-worker cid FILE --prep NAME` / `--max-size SIZE`: the CID a preparation records for a
file, which differs from the plain `cid FILE` when its max size cuts the file into smaller ranges
(on SQLite and PostgreSQL, after a real scan and pack)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from dataset_worker.cli import app
from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.filecid import file_cid
from dataset_worker.db.models import File
from tests.support.preps import packed_preparation

runner = CliRunner()


def _cid(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    root = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url]
    result = runner.invoke(app, [*root, "cid", *args])
    return result.exit_code, result.stdout.strip(), result.stderr


def test_cid_gives_the_file_cid_of_a_preparation(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    # max size 1000 KiB: ranges of 256 KiB (its next power of two, 1 MiB, / 4).
    prep = packed_preparation(db, tmp_path, "small", {"big.bin": 600_000}, daggen=False)
    with db.read() as session:
        recorded = session.scalars(select(file_cid()).where(File.path == "big.bin")).one()
    assert recorded is not None
    path = str(prep.source / "big.bin")

    assert _cid(database_url, tmp_path, path, "--prep", "small") == (0, cid_to_str(recorded), "")
    assert _cid(database_url, tmp_path, path, "--prep", str(prep.id))[1] == cid_to_str(recorded)
    assert _cid(database_url, tmp_path, path, "--max-size", "1000KiB")[1] == cid_to_str(recorded)
    plain = _cid(database_url, tmp_path, path)
    assert plain[0] == 0 and plain[1] != cid_to_str(recorded)  # 1 GiB ranges: one range here

    code, _, error = _cid(database_url, tmp_path, path, "--prep", "nope")
    assert code == 1 and 'preparation "nope" not found' in error
    code, _, error = _cid(database_url, tmp_path, path, "--prep", "small", "--max-size", "1MB")
    assert code == 1 and "give --prep or --max-size, not both" in error
    code, _, error = _cid(database_url, tmp_path, path, "--max-size", "12")
    assert code == 1 and error.startswith("error: --max-size: maxSize must be at least")


def test_the_help_says_when_the_cid_differs() -> None:
    result = runner.invoke(app, ["cid", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "--prep PREP" in text and "--max-size SIZE" in text
    assert "min(next power of two of its max size / 4, 1 GiB)" in text
