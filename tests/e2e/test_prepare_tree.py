"""End to end: a generated tree prepared by the real CLI and worker processes, read back twice.

`prep create` → `prep start-scan` → `run --exit-on-complete` (scan + pack jobs) →
`prep start-daggen` → `run --exit-on-complete` again, each a separate `python -m dataset_worker`
process. Then every CAR is re-read and the whole tree is rebuilt from the root CID:
- always, by the project's pure-Python self-check (`worker.selfcheck`);
- then by the ecosystem's JavaScript libraries through the interop harness (tests/interop,
  `make interop`): `verify-car.mjs` (@ipld/car, every block re-hashed) per CAR, `export.mjs`
  (ipfs-unixfs-exporter) over all CARs, compared with the original folder, and `commp.mjs` for
  every piece CID. Without the harness that part skips (fails in CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dataset_worker.content.cid import cid_from_str, cid_to_str
from dataset_worker.verify.readback import verify_tree
from tests.interop_harness import assert_same_files, harness
from tests.support.jobs import pseudo_random_bytes, reference_root

MAX_SIZE = 2_000_000  # ranges of 512 KiB, CARs under 2 MB
RANGE_SIZE = 512 << 10
TIMEOUT = 120


def make_tree(root: Path) -> int:
    """A tree with the awkward cases; returns the number of files."""
    files: dict[str, bytes] = {
        "readme.txt": b"hello\n",
        "empty.bin": b"",
        "nested/deeper/deepest/leaf.bin": pseudo_random_bytes(3000, seed=1),
        "nested/deeper/also empty.txt": b"",
        "nested/side/x.bin": pseudo_random_bytes(70_000, seed=2),
        "with space/file name with spaces.txt": b"spaces",
        "ünïcødé/日本語.txt": "こんにちは".encode(),
        "ünïcødé/Ωmega.bin": pseudo_random_bytes(1000, seed=3),
        "big/large.bin": pseudo_random_bytes(1_700_000, seed=4),  # 4 ranges, several jobs
        "big/exactly-one-range.bin": pseudo_random_bytes(RANGE_SIZE, seed=5),
    }
    for i in range(30):
        files[f"many/f{i:02d}.dat"] = pseudo_random_bytes(200 * i, seed=100 + i)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "empty folder" / "also empty").mkdir(parents=True)
    return len(files)


def cli(state: Path, url: str, *args: str, expect: int = 0) -> str:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dataset_worker",
            "--database-url",
            url,
            "--state-dir",
            str(state),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert proc.returncode == expect, (
        args,
        proc.returncode,
        proc.stdout[-3000:],
        proc.stderr[-3000:],
    )
    return proc.stdout


def test_prepare_a_tree_end_to_end(database_url: str, tmp_path: Path) -> None:
    source, output, state = tmp_path / "source", tmp_path / "cars", tmp_path / "state"
    n_files = make_tree(source)
    run = ("run", "--exit-on-complete", "--min-interval", "100ms", "--concurrency", "2")
    cli(
        state,
        database_url,
        "prep",
        "create",
        "--name",
        "e2e",
        "--source",
        str(source),
        "--output",
        str(output),
        "--max-size",
        str(MAX_SIZE),
        "--no-auto",  # every step by hand, each run a separate process
    )
    cli(state, database_url, "prep", "start-scan", "e2e")
    cli(state, database_url, *run)
    cli(state, database_url, "prep", "start-daggen", "e2e")
    cli(state, database_url, *run)

    pieces = json.loads(cli(state, database_url, "prep", "pieces", "e2e", "--json"))
    if isinstance(pieces, dict):
        pieces = pieces.get("pieces", pieces)
    dag = [p for p in pieces if p["pieceType"] == "dag"]
    data = [p for p in pieces if p["pieceType"] == "data"]
    assert len(dag) == 1 and len(data) >= 2
    root = dag[0]["rootCid"]
    expected = reference_root(source, RANGE_SIZE)
    assert expected is not None and root == cid_to_str(expected[0])
    cars = sorted(output.glob("*.car"))
    assert sorted(c.name for c in cars) == sorted(p["storagePath"] for p in pieces)
    assert [p.name for p in output.iterdir() if not p.name.endswith(".car")] == []  # no temp files
    for piece in pieces:
        assert (output / piece["storagePath"]).stat().st_size == piece["fileSize"]

    assert verify_tree(cars, cid_from_str(root), source) == n_files

    # The same CARs read by the ecosystem's libraries (the self-check above ran either way).
    js = harness()
    reports = js.verify_car(cars)
    assert all(r["ok"] and r["rootsPresent"] == [True] for r in reports), reports
    js.export(root, tmp_path / "exported", cars)
    assert assert_same_files(tmp_path / "exported", source) == n_files
    # Piece CIDs and sizes of the CARs as written (zero padding included), padded like GetCommp.
    paths = [output / p["storagePath"] for p in pieces]
    references = js.commp(paths, min_piece_size=1 << 20)
    for piece, reference in zip(pieces, references, strict=True):
        assert (reference["pieceCid"], reference["pieceSize"]) == (
            piece["pieceCid"],
            piece["pieceSize"],
        )
