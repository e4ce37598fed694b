"""Benchmark: `dataset-worker prepare` against the step-by-step commands, on the same 1 GiB tree.

A tree of --files files (default 64 x 16 MiB of random bytes, in nested folders) is generated
once and read once to sit in the page cache. Each run then prepares it from scratch (a fresh
SQLite database and output folder), as separate `python -m dataset_worker` processes:
- prepare: `prepare SOURCE --max-size 250MB --concurrency N`;
- step by step: `prep create --no-auto`, `prep start-scan`, `run --exit-on-complete`,
  `prep start-daggen`, `run --exit-on-complete` (the --concurrency N worker threads).
Both produce the same pieces (checked). Runs alternate; medians are reported, as MB/s of source
bytes over the wall time of the whole flow, process starts included.
Goal: prepare / step by step ≥ 0.9.

Usage: .venv/bin/python bench/prepare.py [--files 64] [--file-mib 16] [--runs 2] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
MAX_SIZE = "250MB"


def make_tree(root: Path, files: int, size: int) -> int:
    """`files` random files of `size` bytes spread over nested folders; returns the total."""
    for index in range(files):
        folder = root / f"group{index % 4}" / f"set{index % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"file{index:03d}.bin", "wb") as out:
            left = size
            while left:
                step = min(left, 16 * MIB)
                out.write(os.urandom(step))
                left -= step
    return files * size


def warm(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as stream:
                while stream.read(16 * MIB):
                    pass


def cli(work: Path, *args: str) -> str:
    command = [sys.executable, "-m", "dataset_worker", "--state-dir", str(work / "state"), *args]
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def fresh(base: Path, name: str) -> Path:
    work = base / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def prepare_flow(base: Path, source: Path, threads: int) -> tuple[float, list[str]]:
    work = fresh(base, "prepare")
    started = time.perf_counter()
    cli(work, "prepare", str(source), "--name", "bench", "--output", str(work / "cars"),
        "--max-size", MAX_SIZE, "--concurrency", str(threads))  # fmt: skip
    seconds = time.perf_counter() - started
    return seconds, pieces(work)


def step_flow(base: Path, source: Path, threads: int) -> tuple[float, list[str]]:
    work = fresh(base, "steps")
    run = ("run", "--exit-on-complete", "--concurrency", str(threads))
    started = time.perf_counter()
    cli(work, "prep", "create", "--name", "bench", "--source", str(source),
        "--output", str(work / "cars"), "--max-size", MAX_SIZE, "--no-auto")  # fmt: skip
    cli(work, "prep", "start-scan", "bench")
    cli(work, *run)
    cli(work, "prep", "start-daggen", "bench")
    cli(work, *run)
    seconds = time.perf_counter() - started
    return seconds, pieces(work)


def pieces(work: Path) -> list[str]:
    return sorted(p["pieceCid"] for p in json.loads(cli(work, "prep", "pieces", "bench", "--json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--file-mib", type=int, default=16)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-prepare-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    try:
        source = base / "source"
        total = make_tree(source, args.files, args.file_mib * MIB)
        warm(source)
        times: dict[str, list[float]] = {"prepare": [], "step by step": []}
        for _ in range(args.runs):
            one, prepared = prepare_flow(base, source, args.concurrency)
            two, stepped = step_flow(base, source, args.concurrency)
            if prepared != stepped:
                raise RuntimeError(f"the flows made different pieces: {prepared} vs {stepped}")
            times["prepare"].append(one)
            times["step by step"].append(two)
        mbps = {name: total / statistics.median(values) / 1e6 for name, values in times.items()}
        print(
            f"tree: {args.files} files, {total / MIB:.0f} MiB; max size {MAX_SIZE}; "
            f"concurrency {args.concurrency}; {len(prepared)} pieces; {args.runs} runs each"
        )
        for name, value in mbps.items():
            seconds = ", ".join(f"{t:.2f}" for t in times[name])
            print(f"{name:14s} {value:7.1f} MB/s  (wall seconds: {seconds})")
        ratio = mbps["prepare"] / mbps["step by step"]
        print(f"prepare / step by step: {ratio:.3f}  (goal >= 0.9)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
