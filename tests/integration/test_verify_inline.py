"""`dataset-worker verify` on an inline preparation: every piece is rebuilt from `car_blocks` and
the source and checked like a CAR file (framing, block hashes, size, piece CID); a source file
rewritten in place is named. Real CLI process, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.inline_support import prepare_twins, rewrite_in_place

CHANGED_FILE = "dir1/nested/deep/file.dat"


def verify(database_url: str, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dataset_worker", "--state-dir", str(state)]
    command += ["--database-url", database_url, "verify", "inline", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASET_WORKER_")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def report_of(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def test_verify_rebuilds_every_inline_piece(database_url: str, tmp_path: Path) -> None:
    twins = prepare_twins(database_url, tmp_path)
    state = tmp_path / "state"
    result = verify(database_url, state, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(result)
    assert report["ok"] is True and report["problems"] == []
    assert report["summary"]["piecesChecked"] == len(twins.twins)
    assert report["summary"]["piecesSkipped"] == 0
    assert report["summary"]["bytes"] == sum(t.file_size for t in twins.twins)
    assert {p["pieceType"] for p in report["pieces"]} == {"data", "dag"}

    deep = verify(database_url, state, "--deep")
    assert deep.returncode == 2 and "is inline" in deep.stderr

    path = twins.source / CHANGED_FILE
    original, scanned = path.read_bytes(), path.stat().st_mtime_ns
    rewrite_in_place(path, bytes(len(original)), scanned)
    broken = verify(database_url, state, "--json")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    problems = report_of(broken)["problems"]
    assert [p["kind"] for p in problems] == ["source-changed"]
    assert CHANGED_FILE in problems[0]["message"]
    assert problems[0]["pieceCid"] == twins.with_file(CHANGED_FILE).cid
