"""Write tests/vectors/commp.json: commP of seeded inputs as computed by independent tools.

The piece CIDs come from the interop harness's tests/interop/commp.mjs (or $PIECE_CID_TOOL) with
`--impl both`: it runs both npm implementations, `fr32-sha2-256-trunc254-padded-binary-tree-multihash`
(Rust/WASM) and `@web3-storage/data-segment` (JS), over the same bytes and fails if they
disagree; its `--min-piece-size` padding uses data-segment's zero-subtree commitments. Nothing of
ours computes an expected value here. The tests regenerate the inputs from the seed (see
`vector_input`) and read only the JSON.

Needs the harness installed: `make interop` (npm ci --prefix tests/interop).
Usage: .venv/bin/python scripts/make_commp_vectors.py [--tool PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

SEED = "dataset-worker/commp-vectors/v1"
MIB = 1 << 20
RANDOM_SIZES = [65, 127, 128, 254, 1000, 1016, 1017, 130048, MIB, MIB + 1, 10 * MIB]
ZERO_SIZES = [1024, 2048]
# (input kind, size, min piece size): padding larger than natural, equal, and smaller.
PADDED = [
    ("random", 65, 2048),
    ("random", 1000, MIB),
    ("random", MIB + 1, 4 * MIB),
    ("random", 10 * MIB, MIB),
    ("zeros", 1024, 1 << 30),
]
REPO = Path(__file__).resolve().parent.parent
DEFAULT_TOOL = os.environ.get("PIECE_CID_TOOL", str(REPO / "tests" / "interop" / "commp.mjs"))
BOTH = ["wasm", "data-segment"]
DEFAULT_OUT = REPO / "tests" / "vectors" / "commp.json"


def vector_input(kind: str, size: int, seed: str = SEED) -> bytes:
    """The bytes of a vector: zeros, or SHAKE-256 of "seed:size" stretched to size bytes."""
    if kind == "zeros":
        return bytes(size)
    return hashlib.shake_256(f"{seed}:{size}".encode()).digest(size)


def run_tool(tool: str, path: Path, min_piece_size: int | None) -> dict[str, object]:
    """commp.mjs's JSON record for one file, both implementations cross-checked."""
    cmd = ["node", tool, "--impl", "both", str(path)]
    if min_piece_size is not None:
        cmd[2:2] = ["--min-piece-size", str(min_piece_size)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    # commp.mjs exits 1 when the two implementations disagree: say so, not just "exit status 1".
    if proc.returncode != 0:
        raise SystemExit(f"{tool} failed on {path}: {proc.stderr.strip()}")
    record: dict[str, object] = json.loads(proc.stdout)
    if record.get("impls") != BOTH:
        raise SystemExit(f"{tool} did not run both implementations on {path}: {record}")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", default=DEFAULT_TOOL, help="path of the harness's commp.mjs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="vectors file to write")
    args = parser.parse_args()

    cases: list[tuple[str, int, int | None]] = [("zeros", n, None) for n in ZERO_SIZES]
    cases += [("random", n, None) for n in RANDOM_SIZES]
    cases += PADDED
    vectors = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, size, min_piece_size in cases:
            path = Path(tmp) / f"{kind}-{size}.bin"
            if not path.exists():
                path.write_bytes(vector_input(kind, size))
            record = run_tool(args.tool, path, min_piece_size)
            if record["payloadSize"] != size:
                raise SystemExit(f"tool read {record['payloadSize']} bytes of {path}, not {size}")
            vectors.append(
                {
                    "input": kind,
                    "size": size,
                    "minPieceSize": min_piece_size,
                    "pieceCid": record["pieceCid"],
                    "commP": record["commP"],
                    "pieceSize": record["pieceSize"],
                    "naturalPieceSize": record["naturalPieceSize"],
                }
            )
            print(f"{kind:6} {size:>9} min={min_piece_size!s:>10} {record['pieceCid']}")

    document = {
        "description": "commP vectors computed by independent npm implementations",
        "tool": "tests/interop/commp.mjs --impl both: fr32-sha2-256-trunc254-padded-binary-tree"
        "-multihash (wasm) and @web3-storage/data-segment, cross-checked",
        "script": "scripts/make_commp_vectors.py",
        "seed": SEED,
        "generator": 'random: hashlib.shake_256(f"{seed}:{size}".encode()).digest(size); '
        "zeros: bytes(size)",
        "vectors": vectors,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {len(vectors)} vectors to {args.out}")


if __name__ == "__main__":
    main()
