"""daggen's memory does not grow with the number of directories it exports.

A SQLite database gets a tree of `folders` directories of 100 file entries each (under 20
middle folders), built with the same entry blobs and CIDs the pack jobs write. A fresh process
then runs the real daggen job on it and reports how much its peak RSS grew during the job. With
the DAG's block rows and exported directories held in lists, ten times the folders costs ten
times the memory (about 6 KB per folder here: its node bytes plus the row); spooled to disk, it
stays flat. The root CID and DAG piece of the small tree are pinned (same bytes as before the
spool).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_worker.content.cid import raw_cid
from dataset_worker.db import open_database
from dataset_worker.db.models import Directory
from dataset_worker.worker.jobs.dirdata import DirEntry, build_node, encode_entries
from tests.support.jobs import make_local_preparation

MIDDLE = 20
ENTRIES = 100
SMALL, LARGE = 400, 4000
# What the DAG of the SMALL tree is (computed with the list-based daggen before the spool).
SMALL_ROOT = "bafybeihd2nxk5r3etxd2zekyco4kei7iz3oncrpyw55bsx27gbqa2gzexy"
SMALL_PIECE = "baga6ea4seaqln3vlp3aowoctfrjzjfahw3vnt5gwjx3rtmxisjmauicrmsoreca"

RUN_DAGGEN = """
import json, resource, sys
from sqlalchemy import select
from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import open_database
from dataset_worker.db.models import Car, PieceType, SourceAttachment
from tests.support.jobs import JobType, add_job, run_job

def hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

db = open_database(sys.argv[1])
with db.read() as session:
    attachment = session.scalar(select(SourceAttachment.id))
job = add_job(db, attachment, JobType.DAGGEN)
before = hwm_kib()
run = run_job(db, job)
assert run.error is None, run.error
with db.read() as session:
    car = session.execute(select(Car.root_cid, Car.piece_cid).where(Car.piece_type == PieceType.DAG)).one()
print(json.dumps({"grew_kib": hwm_kib() - before, "root": cid_to_str(car[0]), "piece": cid_to_str(car[1])}))
"""


def _build_tree(url: str, root: Path, folders: int) -> None:
    """Directory rows as the pack jobs leave them: each with its entries blob and CID."""
    db = open_database(url)
    try:
        rows = make_local_preparation(db, "mem", root / "src", root / "out")
        with db.write() as session:
            middles = [
                Directory(
                    name=f"m{m:02d}",
                    parent_id=rows.root_directory_id,
                    attachment_id=rows.attachment_id,
                )
                for m in range(MIDDLE)
            ]
            session.add_all(middles)
            session.flush()
            middle_entries: list[dict[str, DirEntry]] = [{} for _ in range(MIDDLE)]
            for index in range(folders):
                entries = {
                    f"f{index:05d}-{e:03d}.bin": DirEntry(raw_cid(b"%d/%d" % (index, e)), e)
                    for e in range(ENTRIES)
                }
                node = build_node(entries)
                parent = index % MIDDLE
                session.add(
                    Directory(
                        name=f"d{index:05d}",
                        parent_id=middles[parent].id,
                        attachment_id=rows.attachment_id,
                        cid=node.cid,
                        data=encode_entries(entries),
                    )
                )
                middle_entries[parent][f"d{index:05d}"] = DirEntry(node.cid, node.size)
            top: dict[str, DirEntry] = {}
            for middle, entries in zip(middles, middle_entries, strict=True):
                node = build_node(entries)
                middle.cid, middle.data = node.cid, encode_entries(entries)
                top[middle.name] = DirEntry(node.cid, node.size)
            root_row = session.get(Directory, rows.root_directory_id)
            assert root_row is not None
            node = build_node(top)
            root_row.cid, root_row.data = node.cid, encode_entries(top)
    finally:
        db.dispose()


def _daggen_in_a_fresh_process(tmp_path: Path, folders: int) -> dict[str, object]:
    work = tmp_path / str(folders)
    work.mkdir()
    url = f"sqlite:///{work / 'dag.db'}"
    _build_tree(url, work, folders)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", RUN_DAGGEN, url],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_daggen_memory_stays_flat_in_the_number_of_directories(tmp_path: Path) -> None:
    small = _daggen_in_a_fresh_process(tmp_path, SMALL)
    large = _daggen_in_a_fresh_process(tmp_path, LARGE)
    assert (small["root"], small["piece"]) == (SMALL_ROOT, SMALL_PIECE)
    grown_kib = int(large["grew_kib"]) - int(small["grew_kib"])  # type: ignore[call-overload]
    # Held in lists, the 3,600 extra folders cost about 6 KB each: over 20 MiB (measured 23).
    assert grown_kib < 5 * 1024, (small, large)
