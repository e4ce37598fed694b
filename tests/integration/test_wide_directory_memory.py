"""A folder of a million entries: pack's directory upkeep and daggen keep memory flat.

A SQLite database gets one folder of 1,000,000 entries stored as rows (docs/architecture.md#wide-directories),
as pack jobs leave a wide directory. A fresh process then (1) runs the directory upkeep of a pack
job that adds one more file to it, and (2) runs the real daggen job, and reports how much its peak
RSS grew during each. Held in memory, as the entries blob was, the folder's entries alone take
about 700 MiB (the 1M-entry dict measured 986 MiB of RSS with its blob decoded); streamed in hash
order, with the HAMT's shards sorted on disk, they grew 4 and 23 MiB. The DAG piece is then read
back as a reader would, from its blocks alone, and must hold every entry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_worker.content.car import CarReader
from dataset_worker.content.cid import cid_from_str, raw_cid
from dataset_worker.content.directory import read_directory_entries
from tests.support.widedir import build_wide_folder, wide_entry

ENTRIES = 1_000_000
LIMIT_MIB = 64  # what each step may add to the peak RSS (measured: 4 and 23 MiB)

RUN = """
import json, sys
from sqlalchemy import select
from dataset_worker.content.cid import cid_to_str, raw_cid
from dataset_worker.db import open_database
from dataset_worker.db.models import Car, Directory, PieceType, SourceAttachment
from dataset_worker.worker.jobs.dirtree import FinalisedFile, update_directories
from tests.support.jobs import JobType, add_job, run_job

def hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")

db = open_database(sys.argv[1])
with db.read() as session:
    attachment = session.scalar(select(SourceAttachment.id))
    wide = session.scalar(select(Directory.id).where(Directory.name == "wide"))
before = hwm_kib()
with db.write() as session:  # what a pack job's recording transaction does for one new file
    update_directories(session, [FinalisedFile(wide, "zz-new.bin", raw_cid(b"new"), 3)])
upkeep = hwm_kib() - before
with db.read() as session:
    root = session.scalar(select(Directory.cid).where(Directory.parent_id.is_(None)))
before = hwm_kib()
run = run_job(db, add_job(db, attachment, JobType.DAGGEN))
assert run.error is None, run.error
daggen = hwm_kib() - before
with db.read() as session:
    car = session.execute(select(Car).where(Car.piece_type == PieceType.DAG)).scalar_one()
    path = sys.argv[2] + "/" + car.storage_path
print(json.dumps({"upkeep_kib": upkeep, "daggen_kib": daggen, "root": cid_to_str(root),
                  "dag_root": cid_to_str(car.root_cid), "car": path}))
"""


def _read_back(car: Path, root: bytes) -> dict[str, tuple[bytes, int]]:
    """The wide folder's entries as a reader finds them in the DAG piece alone."""
    with open(car, "rb") as stream:
        blocks = {block.cid: block.data for block in CarReader(stream)}
    (wide,) = read_directory_entries(root, blocks.__getitem__).values()
    return read_directory_entries(wide[0], blocks.__getitem__)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_million_entry_folder_streams_through_upkeep_and_daggen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wide.db'}"
    build_wide_folder(url, tmp_path, ENTRIES)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", RUN, url, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["root"] == result["dag_root"]
    assert result["upkeep_kib"] < LIMIT_MIB * 1024, result
    assert result["daggen_kib"] < LIMIT_MIB * 1024, result
    entries = _read_back(Path(result["car"]), cid_from_str(result["root"]))
    assert len(entries) == ENTRIES + 1  # every shard is in the piece, and the upkeep's new file
    assert entries["zz-new.bin"] == (raw_cid(b"new"), 3)
    for index in (0, 123_456, ENTRIES - 1):
        name, cid, tsize = wide_entry(index)
        assert entries[name.decode()] == (cid, tsize)
