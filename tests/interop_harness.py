"""Run the project's JavaScript interop harness (tests/interop) from the tests.

The harness checks what dataset-worker writes with the IPFS/Filecoin ecosystem's own npm
libraries: `verify-car.mjs` (CAR framing, every block re-hashed), `commp.mjs` (piece CIDs) and
`export.mjs` (the UnixFS tree rebuilt by ipfs-unixfs-exporter). It is installed with
`make interop` (`npm ci --prefix tests/interop`). Without Node.js or the installed packages the
tests that need it skip, or fail under DATASET_WORKER_REQUIRE_ALL_TESTS=1 (`skip_or_fail`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import skip_or_fail

HARNESS_DIR = Path(__file__).resolve().parent / "interop"
MIN_NODE_MAJOR = 20  # the harness's dependencies need Node 20 (package.json "engines")
TIMEOUT = 300  # seconds per script run: hashing tens of MiB on a busy 2-core machine
INSTALL_HINT = "run `make interop` (npm ci --prefix tests/interop)"

Record = dict[str, Any]


@functools.cache
def missing_reason() -> str | None:
    """Why the harness cannot run here, or None when Node.js and its packages are installed."""
    node = shutil.which("node")
    if node is None:
        return "interop harness: node is not installed (Node.js >= 20 is needed)"
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        return f"interop harness: cannot read the version of {node} ({version!r})"
    if major < MIN_NODE_MAJOR:
        return f"interop harness: node {version} is too old, it needs >= {MIN_NODE_MAJOR}"
    # The pinned versions, not just the folders: a stale node_modules would test other code.
    pinned: dict[str, str] = json.loads((HARNESS_DIR / "package.json").read_text())["dependencies"]
    for name, version in pinned.items():
        manifest = HARNESS_DIR / "node_modules" / name / "package.json"
        if not manifest.is_file():
            return f"interop harness not installed ({name} is missing): {INSTALL_HINT}"
        installed = json.loads(manifest.read_text()).get("version")
        if installed != version:
            return (
                f"interop harness out of date ({name} {installed}, want {version}): {INSTALL_HINT}"
            )
    return None


def harness() -> Harness:
    """The installed harness; skips the test (fails in CI) when it cannot run."""
    reason = missing_reason()
    if reason is not None:
        skip_or_fail(reason)
    node = shutil.which("node")
    assert node is not None  # missing_reason() checked it
    return Harness(node)


@dataclass(frozen=True)
class Harness:
    """The harness's scripts, run with one Node.js executable."""

    node: str

    def run(self, script: str, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
        """Run one script (e.g. "verify-car.mjs") with arguments; any exit status is returned."""
        return subprocess.run(
            [self.node, "--no-warnings", str(HARNESS_DIR / script), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    def verify_car(self, cars: Iterable[Path]) -> list[Record]:
        """verify-car.mjs's report for each CAR; AssertionError naming the problems if any."""
        proc = self._checked("verify-car.mjs", *cars)
        return _records(proc.stdout)

    def commp(
        self, files: Iterable[Path], *, min_piece_size: int | None = None, impl: str = "wasm"
    ) -> list[Record]:
        """commp.mjs's record (pieceCid, pieceCidV2, pieceSize, payloadSize, …) for each file, in
        order; `impl="both"` runs both libraries and fails if they disagree."""
        options = ["--impl", impl]
        if min_piece_size is not None:
            options += ["--min-piece-size", str(min_piece_size)]
        return _records(self._checked("commp.mjs", *options, *files).stdout)

    def export(self, root: str, out_dir: Path, cars: Iterable[Path]) -> Record:
        """Rebuild the tree under `root` from the CARs into `out_dir`; export.mjs's summary."""
        [summary] = _records(self._checked("export.mjs", "--root", root, out_dir, *cars).stdout)
        return summary

    def _checked(
        self, script: str, *args: str | os.PathLike[str]
    ) -> subprocess.CompletedProcess[str]:
        proc = self.run(script, *args)
        assert proc.returncode == 0, (
            f"{script} exited with {proc.returncode}\n{proc.stderr[-3000:]}{proc.stdout[-3000:]}"
        )
        return proc


def _records(stdout: str) -> list[Record]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def assert_same_files(exported: Path, original: Path) -> int:
    """Every regular file of `original` is in `exported` with the same bytes, and nothing else
    is; returns the number of files. Directories with no file below them may be missing from
    the export (Singularity leaves them out), but no directory may be invented."""

    def tree(root: Path) -> tuple[set[Path], set[Path]]:
        files: set[Path] = set()
        folders: set[Path] = set()
        for path in root.rglob("*"):
            (folders if path.is_dir() else files).add(path.relative_to(root))
        return files, folders

    exported_files, exported_folders = tree(exported)
    original_files, original_folders = tree(original)
    assert exported_files == original_files, (
        f"missing: {sorted(original_files - exported_files)[:20]}, "
        f"extra: {sorted(exported_files - original_files)[:20]}"
    )
    assert exported_folders <= original_folders, sorted(exported_folders - original_folders)
    for rel in sorted(original_files):
        assert (exported / rel).read_bytes() == (original / rel).read_bytes(), f"{rel} differs"
    return len(original_files)
