"""Benchmark: one folder of --entries entries, as a blob and as rows (docs/architecture.md#wide-directories).

The baseline is the blob path, measured in the same run: the folder's entries in one
`directories.data` blob. What a pack job adding one file to the folder did with it: decode the
blob, add the entry, build the node (a HAMT) and encode the blob again; what daggen did: decode
it, build the node and sort its blocks. The wide path: the same folder as `directory_entries`
rows; the real upkeep of one more file (`update_directories`), then the real daggen job on it.
Each step of each path runs in a child process of its own and reports its wall time and how much
it raised the process's peak RSS (VmHWM). The ratios are wide / blob.

Usage: PYTHONPATH=. .venv/bin/python bench/widedir.py [--entries 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.storage_speed import status_kib

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("upkeep", "daggen")


def _step(run: Callable[[], object]) -> dict[str, float]:
    before, started = status_kib("VmHWM"), time.perf_counter()
    run()
    return {"s": time.perf_counter() - started, "mib": (status_kib("VmHWM") - before) / 1024}


def child_blob(path: str, step: str) -> dict[str, float]:
    """The blob path: the pack job's upkeep of one more file, or daggen's build and sort."""
    from dataset_worker.content.cid import raw_cid
    from dataset_worker.worker.jobs.dirdata import (
        DirEntry,
        build_node,
        decode_entries,
        encode_entries,
        extra_blocks,
    )

    blob = Path(path).read_bytes()  # as the job reads it from its row

    def upkeep() -> None:
        folder = decode_entries(blob)
        folder["zz-new.bin"] = DirEntry(raw_cid(b"new"), 3)
        build_node(folder)
        encode_entries(folder)

    def daggen() -> None:
        folder = decode_entries(blob)
        node = build_node(folder)
        sorted(dict(node.blocks).items()) + extra_blocks(folder)

    return _step(upkeep if step == "upkeep" else daggen)


def child_wide(url: str, step: str) -> dict[str, float]:
    """The wide path: the real upkeep of one more file, then the real daggen job."""
    from sqlalchemy import select
    from tests.support.jobs import add_job, run_job
    from tests.support.widedir import FOLDER

    from dataset_worker.content.cid import raw_cid
    from dataset_worker.db import open_database
    from dataset_worker.db.models import Directory, JobType, SourceAttachment
    from dataset_worker.worker.jobs.dirtree import FinalisedFile, update_directories

    db = open_database(url)
    with db.read() as session:
        attachment = session.scalar(select(SourceAttachment.id))
        wide = session.scalar(select(Directory.id).where(Directory.name == FOLDER))
    assert attachment is not None and wide is not None

    def upkeep() -> None:
        with db.write() as session:
            update_directories(session, [FinalisedFile(wide, "zz-new.bin", raw_cid(b"new"), 3)])

    def daggen() -> None:
        run = run_job(db, add_job(db, attachment, JobType.DAGGEN))
        if run.error is not None:
            raise RuntimeError(f"daggen failed: {run.error}")

    return _step(upkeep if step == "upkeep" else daggen)


def _child(*args: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--child", choices=("blob", "wide"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--blob", help=argparse.SUPPRESS)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "blob":
        print(json.dumps(child_blob(args.blob, args.step)))
        return
    if args.child == "wide":
        print(json.dumps(child_wide(args.url, args.step)))
        return
    from tests.support.widedir import build_wide_folder, wide_entry

    from dataset_worker.worker.jobs.dirdata import DirEntry, encode_entries

    work = Path(tempfile.mkdtemp(prefix="bench-widedir-"))
    try:
        url = f"sqlite:///{work / 'wide.db'}"
        build_wide_folder(url, work, args.entries)
        folder = {n.decode(): DirEntry(c, t) for n, c, t in map(wide_entry, range(args.entries))}
        blob_path = work / "blob.bin"
        blob_path.write_bytes(encode_entries(folder))
        del folder
        blob, wide = {}, {}
        for step in STEPS:
            blob[step] = _child("--child", "blob", "--blob", str(blob_path), "--step", step)
            wide[step] = _child("--child", "wide", "--url", url, "--step", step)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); one folder of {args.entries:,} entries, SQLite")
    print(f"  {'step':8s} {'blob s':>8s} {'rows s':>8s} {'ratio':>6s} "
          f"{'blob +MiB':>10s} {'rows +MiB':>10s} {'ratio':>6s}")  # fmt: skip
    for step in STEPS:
        b, w = blob[step], wide[step]
        print(
            f"  {step:8s} {b['s']:8.2f} {w['s']:8.2f} {w['s'] / b['s']:6.2f} "
            f"{b['mib']:10.0f} {w['mib']:10.0f} {w['mib'] / max(b['mib'], 1):6.3f}"
        )
    print("  (upkeep: a pack job adding one file to the folder; daggen: the folder's blocks)")


if __name__ == "__main__":
    main()
