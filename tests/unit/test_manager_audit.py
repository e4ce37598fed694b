"""The audit log: appended JSON lines, newest first, bounded by rotation."""

from __future__ import annotations

import json
from pathlib import Path

from dataset_worker.manager.audit import AuditLog


def test_entries_come_back_newest_first(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.log")
    for pid in range(5):
        audit.append("start", config={"concurrency": 1}, result={"pid": pid}, remote="127.0.0.1")
    entries = audit.read(3)
    assert [e["result"]["pid"] for e in entries] == [4, 3, 2]
    assert entries[0]["action"] == "start"
    assert entries[0]["remote"] == "127.0.0.1"
    assert entries[0]["time"].endswith("Z")
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["result"] == {"pid": 0}


def test_rotation_bounds_the_file_and_reads_span_both(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.log", max_bytes=1000)
    for n in range(40):
        audit.append("stop", config=None, result={"n": n}, remote=None)
    assert (tmp_path / "audit.log").stat().st_size < 1200
    assert audit.rotated.exists()
    entries = audit.read(15)
    assert [e["result"]["n"] for e in entries] == list(range(39, 24, -1))


def test_damaged_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    audit = AuditLog(path)
    audit.append("start", config=None, result={"ok": True}, remote=None)
    with path.open("a") as handle:
        handle.write('{"cut in the mid\n')
    assert [e["result"] for e in audit.read(10)] == [{"ok": True}]
    assert AuditLog(tmp_path / "none.log").read(10) == []
