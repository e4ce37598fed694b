"""What `dataset-worker prepare` prints and checks first: the last progress line once, counts in
the right number, and a bad --manifest refused before anything is created."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from dataset_worker.cli.prepare_progress import ProgressReporter, RateMeter
from dataset_worker.db import Database
from dataset_worker.prep import CreatePreparationRequest, create_preparation
from tests.support.jobs import write_files


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_the_last_phase_is_printed_once(db: Database, tmp_path: Path) -> None:
    write_files(tmp_path / "src", {"a": b"a"})
    request = CreatePreparationRequest(name="p", source=str(tmp_path / "src"), no_auto=True)
    create_preparation(db, request)
    for last in ("done", "interrupted", "failed"):
        console, out = _console()
        with ProgressReporter(db, "p", console) as progress:
            progress.set_phase("packing")
            progress.set_phase(last)
            # The rate moves on before the reporter closes: the closing poll sees other figures.
            progress.meter = RateMeter()
            progress.meter.add(time.monotonic() - 5, -5_000_000)
        lines = out.getvalue().splitlines()
        assert [line.split(":")[0] for line in lines] == ["packing", last], lines


def test_counts_are_in_the_right_number(db: Database, tmp_path: Path) -> None:
    write_files(tmp_path / "src", {"a": b"a"})
    create_preparation(db, CreatePreparationRequest(name="p", source=str(tmp_path / "src")))
    console, _ = _console()
    with ProgressReporter(db, "p", console) as progress:
        progress.set_phase("scanning")
        line = progress.line()
    assert line.endswith(", 0 files, 0 pieces"), line
    assert progress.status is not None
    progress.status = progress.status.model_copy(update={"files_scanned": 1, "pieces": 1})
    assert progress.line().endswith(", 1 file, 1 piece")


def _cli(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataset_worker", "--state-dir", str(tmp_path / "state"),
         "--database-url", database_url, *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_bad_manifest_options_are_refused_before_anything_is_created(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "data"
    write_files(source, {"a.txt": b"a"})
    cases = (
        (("--manifest", str(tmp_path / "m.json")), "the super-manifest needs description"),
        (("--manifest", str(tmp_path / "no" / "m.json"), "--description", "d"), "does not exist"),
        (("--manifest", str(tmp_path)), "is a folder"),
    )
    for options, message in cases:
        result = _cli(tmp_path, database_url, "prepare", str(source), *options)
        assert result.returncode == 1, result.stdout + result.stderr
        assert message in result.stderr
        listed = _cli(tmp_path, database_url, "prep", "list", "--json")
        assert listed.stdout.strip() == "[]", listed.stdout + listed.stderr  # nothing created
        assert not (tmp_path / "state" / "cars").exists()
