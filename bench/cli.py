"""Benchmark: start-up time of short CLI commands, as ratios to a bare import in the same run.

Each command runs as a fresh process, as a user runs it, RUNS times, interleaved with its
baseline so that both see the same machine load; the median wall time is compared:

- `dataset-worker --help` and `dataset-worker commp FILE` (a 64 KiB file) against
  `python -c "import typer"`: goal at most 2x;
- `dataset-worker jobs list` and `dataset-worker prep status NAME` on SQLite against
  `python -c "import sqlalchemy"`: goal at most 1.5x.

Usage: .venv/bin/python bench/cli.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
SCRIPT = Path(PYTHON).parent / "dataset-worker"


def command_line(*args: str) -> list[str]:
    """The installed console script, as users run it (or `python -m` without one)."""
    if SCRIPT.exists():
        return [str(SCRIPT), *args]
    return [PYTHON, "-m", "dataset_worker", *args]


def wall_time(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from spawn to exit; the command must succeed."""
    began = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True)
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr.decode(errors='replace')}")
    return elapsed


def setup(folder: Path, env: dict[str, str]) -> Path:
    """A SQLite state dir with one preparation (scanned and packed), and a small file."""
    source = folder / "source"
    source.mkdir()
    for index in range(20):
        (source / f"file-{index}.bin").write_bytes(os.urandom(4096))
    steps = [
        ["prep", "create", "--name", "bench", "--source", str(source), "--output",
         str(folder / "cars"), "--max-size", "1000000"],
        ["run", "--exit-on-complete", "--min-interval", "10ms", "--max-interval", "20ms"],
    ]  # fmt: skip
    for step in steps:
        wall_time(command_line(*step), env)
    small = folder / "small.bin"
    small.write_bytes(os.urandom(64 * 1024))
    return small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (median)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "DATASET_WORKER_STATE_DIR": str(folder / "state")}
        env.pop("DATASET_WORKER_DATABASE_URL", None)
        # Bytecode, as an installed package has it: the baselines' libraries come with .pyc
        # files, while a PYTHONDONTWRITEBYTECODE environment would compile this project's
        # modules from source on every run. The warm-up below writes them here (not in src/).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        small = setup(folder, env)
        typer_base = [PYTHON, "-c", "import typer"]
        sqlalchemy_base = [PYTHON, "-c", "import sqlalchemy"]
        cases = [
            ("dataset-worker --help", command_line("--help"), "import typer", typer_base, 2.0),
            ("dataset-worker commp 64KiB", command_line("commp", str(small)), "import typer",
             typer_base, 2.0),
            ("dataset-worker jobs list", command_line("jobs", "list"), "import sqlalchemy",
             sqlalchemy_base, 1.5),
            ("dataset-worker prep status", command_line("prep", "status", "bench"),
             "import sqlalchemy", sqlalchemy_base, 1.5),
        ]  # fmt: skip
        for warm_argv in {tuple(case[1]) for case in cases} | {tuple(typer_base)}:
            wall_time(list(warm_argv), env)  # warm the page cache and .pyc files
        times: dict[str, list[float]] = {}
        for _ in range(options.runs):
            for name, argv, base_name, base_argv, _goal in cases:
                times.setdefault(name, []).append(wall_time(argv, env))
                times.setdefault(base_name, []).append(wall_time(base_argv, env))
    print(f"CLI start-up, median of {options.runs} runs each ({os.cpu_count()} CPUs)")
    print(f"{'command':<30} {'ms':>7}  {'baseline':<18} {'ms':>7}  {'ratio':>6}  goal")
    for name, _argv, base_name, _base_argv, goal in cases:
        ms = statistics.median(times[name]) * 1000
        base = statistics.median(times[base_name]) * 1000
        ratio = ms / base
        verdict = "ok" if ratio <= goal else "MISSED"
        print(f"{name:<30} {ms:7.0f}  {base_name:<18} {base:7.0f}  {ratio:5.2f}x  "
              f"<= {goal}x {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
