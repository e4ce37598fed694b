"""`dataset-worker prep explore` and `prep delete` through the real Typer app and database, on a
preparation scanned, packed and given its DAG by the real job bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dataset_worker.cli import app
from dataset_worker.db import Database
from tests.support.preps import TABLES, PackedPrep, packed_preparation, table_counts

Run = Callable[..., Result]
KIB = 1024
MARKUP_NAME = "[bold red]loud.txt"  # printed as is, never as rich markup
FILES: dict[str, int | bytes] = {
    "a.txt": b"hello",
    f"dir/{MARKUP_NAME}": b"tricky",
    "dir/sub/c.bin": 5 * KIB,
}


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    runner = CliRunner()
    root = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url]

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, [*root, *args], input=input)

    return invoke


@pytest.fixture
def prep(db: Database, tmp_path: Path) -> PackedPrep:
    return packed_preparation(db, tmp_path, "docs", FILES)


def test_explore_prints_a_table_of_the_folder(run: Run, prep: PackedPrep) -> None:
    root = run("prep", "explore", "docs")
    assert root.exit_code == 0, root.output
    lines = root.stdout.splitlines()
    assert any("dir/" in line for line in lines) and any("a.txt" in line for line in lines)
    assert root.stdout.index("dir/") < root.stdout.index("a.txt")  # folders first

    folder = run("prep", "explore", "docs", "dir")
    assert folder.exit_code == 0, folder.output
    assert MARKUP_NAME in folder.stdout  # escaped: the brackets survive
    page = json.loads(run("prep", "explore", "docs", "dir", "--json").stdout)
    tricky = next(e for e in page["entries"] if e["name"] == MARKUP_NAME)
    assert tricky["cid"] and tricky["cid"] in folder.stdout
    assert tricky["pieceCids"][0] in folder.stdout

    first = run("prep", "explore", "docs", "dir", "--limit", "1")
    assert first.exit_code == 0 and "more: --cursor " in first.stdout
    cursor = first.stdout.split("more: --cursor ")[1].split()[0]
    second = json.loads(run("prep", "explore", "docs", "dir", "--cursor", cursor, "--json").stdout)
    assert [e["name"] for e in second["entries"]] == [MARKUP_NAME]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nope", 'folder "nope" not found in preparation "docs"'),
        ("a.txt", "is a file, not a folder"),
        ("dir/../dir", "must not contain .."),
    ],
)
def test_explore_errors_name_the_path(run: Run, prep: PackedPrep, path: str, message: str) -> None:
    result = run("prep", "explore", "docs", path)
    assert result.exit_code == 1 and message in result.stderr


def test_delete_asks_first_and_reports_counts(run: Run, db: Database, prep: PackedPrep) -> None:
    cars = sorted(prep.output.glob("*.car"))
    refused = run("prep", "delete", "docs", input="n\n")
    assert refused.exit_code == 1 and "nothing deleted" in refused.stderr
    assert 'Delete preparation "docs"' in refused.stderr and "3 files" in refused.stderr
    assert table_counts(db)["preparations"] == 1

    deleted = run("prep", "delete", "docs", "--delete-cars", input="y\n")
    assert deleted.exit_code == 0, deleted.output
    assert 'Deleted preparation "docs"' in deleted.stdout and "3 files" in deleted.stdout
    assert f"{len(cars)} CAR files" in deleted.stdout
    assert not list(prep.output.glob("*.car"))
    assert table_counts(db) == dict.fromkeys(TABLES, 0)

    again = run("prep", "delete", "docs", "--yes", "--json")
    assert again.exit_code == 1 and 'preparation "docs" not found' in again.stderr


def test_delete_yes_json(run: Run, db: Database, prep: PackedPrep) -> None:
    result = run("prep", "delete", "docs", "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["name"] == "docs" and report["removed"]["files"] == 3
    assert report["removed"]["carFiles"] == 0 and list(prep.output.glob("*.car"))
