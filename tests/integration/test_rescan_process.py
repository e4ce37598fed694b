"""The issue's repro through the real CLI and a real worker process, on SQLite and PostgreSQL:
files deleted, modified, grown and added between the scan and the packs. `prep rescan` (or
`--auto-rescan`, by itself) re-plans, the preparation ends `done`, and `extract` of its root
CID gives exactly the current tree."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dataset_worker.cli import app
from dataset_worker.db import Database
from dataset_worker.prep import get_preparation_status
from tests.integration.worker_support import Spawn, spawner
from tests.support.jobs import write_files

RUN = ["--exit-on-complete", "--min-interval", "50ms", "--max-interval", "200ms"]
Cli = Callable[..., Result]


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator[Spawn]:
    with spawner(tmp_path, database_url) as start:
        yield start


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    runner = CliRunner()
    root = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url]

    def invoke(*args: str) -> Result:
        result = runner.invoke(app, [*root, *args])
        assert result.exit_code == 0, result.output
        return result

    return invoke


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def _make_source(tmp_path: Path) -> Path:
    source = tmp_path / "T"
    write_files(source, {f"small/f{index:04}.txt": 25_000 + index for index in range(95, 110)})
    write_files(source, {"big/one.bin": 400_000, "top.txt": b"top"})
    return source


def _change(source: Path) -> None:
    (source / "small" / "f0100.txt").unlink()
    modified = source / "small" / "f0101.txt"
    before = modified.stat().st_mtime_ns
    modified.write_bytes(b"x" * modified.stat().st_size)  # same size …
    os.utime(modified, ns=(before + 7 * 10**9, before + 7 * 10**9))  # … new mtime
    with (source / "small" / "f0102.txt").open("ab") as grown:
        grown.write(b"more")
    (source / "small" / "f0200.txt").write_bytes(b"added after the scan")


def _check_done(db: Database, cli: Cli, name: str, tmp_path: Path, source: Path) -> None:
    status = get_preparation_status(db, name)
    assert status.stage == "done", status
    root = json.loads(cli("prep", "status", name, "--json").stdout)["rootCid"]
    out = tmp_path / f"extracted-{name}"
    cli("extract", str(tmp_path / "O"), "--root", root, "-o", str(out))
    assert _tree(out) == _tree(source)


def test_prep_rescan_after_the_source_changed(
    spawn: Spawn, cli: Cli, db: Database, tmp_path: Path
) -> None:
    source = _make_source(tmp_path)
    output = str(tmp_path / "O")
    cli("prep", "create", "--name", "del", "--source", str(source), "--output", output, "--max-size", "60KiB", "--min-piece-size", "64KiB", "--no-auto")  # fmt: skip
    cli("prep", "start-scan", "del")
    assert spawn(None, "--no-enable-pack", "--no-enable-dag", *RUN).wait(120) == 0
    _change(source)
    worker = spawn(None, *RUN)
    # Exit 1: jobs of its scope failed during the run (the packs of the changed files).
    assert worker.wait(120) == 1, worker.output()
    failed = json.loads(cli("jobs", "list", "--prep", "del", "--status", "error", "--json").stdout)
    messages = " ".join(item["error"] for item in failed["jobs"])
    assert "small/f0100.txt no longer exists" in messages
    assert "modified 20" in messages and "prep rescan" in messages  # ISO 8601 times, the way out

    reply = cli("prep", "rescan", "del")
    assert "rescan" in reply.output
    worker = spawn(None, *RUN)
    assert worker.wait(120) == 0, worker.output()
    cli("prep", "start-daggen", "del")  # --no-auto: the DAG is a step of its own
    assert spawn(None, *RUN).wait(120) == 0
    _check_done(db, cli, "del", tmp_path, source)


def test_auto_rescan_replans_by_itself(
    spawn: Spawn, cli: Cli, db: Database, tmp_path: Path
) -> None:
    source = _make_source(tmp_path)
    output = str(tmp_path / "O")
    created = cli("prep", "create", "--name", "auto", "--source", str(source), "--output", output, "--max-size", "60KiB", "--min-piece-size", "64KiB", "--auto-rescan", "--json")  # fmt: skip
    assert json.loads(created.stdout)["autoRescan"] is True
    assert spawn(None, "--no-enable-pack", "--no-enable-dag", *RUN).wait(120) == 0
    _change(source)
    worker = spawn(None, *RUN)
    assert worker.wait(180) == 0, worker.output()
    assert "pack.auto_rescan" in worker.output()
    _check_done(db, cli, "auto", tmp_path, source)
