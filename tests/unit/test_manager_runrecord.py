"""RecordReader: the run record as on disk, even for replacements in quick succession."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from dataset_worker.manager.runrecord import RecordReader, RunRecord, write_record

RECORD = RunRecord(
    run_id=1,
    pid=100,
    start_ticks=5,
    start_time=1_700_000_000.0,
    hostname="h",
    pump_pid=99,
    pump_start_ticks=4,
)


def test_every_replacement_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    reader = RecordReader(path)
    assert reader.read() is None
    for run in range(1, 30):  # faster than file timestamps tick: same size, maybe same inode
        record = replace(RECORD, run_id=run % 10, pid=100 + run % 10)
        write_record(path, record)
        assert reader.read() == record
    path.unlink()
    assert reader.read() is None


def test_a_settled_record_is_not_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_record(path, RECORD)
    reader = RecordReader(path, clock=lambda: time.time() + 60)  # as if read a minute later
    first = reader.read()
    assert first == RECORD
    assert reader.read() is first  # the parsed object itself: no new parse
    ended = RECORD.finished(RECORD.start_time + 5, 0)
    write_record(path, ended)
    assert reader.read() == ended
