"""Interop: our PieceCID v2 (FRC-0069) equals the one the ecosystem's npm libraries make.

For every golden size of docs/formats.md (the commP vectors, with and without a minimum piece
size, the natural piece size edges, and the padded CARs of the padding vectors) the harness hashes the file with
`fr32-sha2-256-trunc254-padded-binary-tree-multihash` and `@web3-storage/data-segment` (which
must agree), and `piece_cid_v2(v1, payload size, piece size)` computed from the v1 piece CID and
the two sizes alone must give the same v2 CID; parsing it gives the sizes back.

Needs the harness (`make interop`); without it the tests skip, or fail in CI.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dataset_worker.cli import app
from dataset_worker.content.piececid2 import parse_piece_cid_v2, piece_cid_v2
from tests.interop_harness import Harness, harness

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "commp.json").read_text()
)
KIB = 1024
MIB = 1 << 20
# docs/formats.md "Piece size and padding vectors": (CAR bytes, file size with Singularity's
# written zeros, piece size). The DAG CAR's own size is not a vector; any small size shows it.
PADDED = [(500_098, 1_040_384, MIB), (1_500_283, 1_500_283, 2 * MIB), (3_000, 520_192, 512 * KIB)]
# docs/formats.md "natural piece sizes": each size at the edge of a piece size.
NATURAL_SIZES = [65, 127, 128, 254, 255, 1016, 1017]


@pytest.fixture(scope="module")
def js() -> Harness:
    """The installed harness (skip, or fail in CI, without it)."""
    return harness()


def vector_input(kind: str, size: int) -> bytes:
    if kind == "zeros":
        return bytes(size)
    return hashlib.shake_256(f"{VECTORS['seed']}:{size}".encode()).digest(size)


def check(record: dict[str, Any], payload_size: int) -> None:
    assert record["impls"] == ["wasm", "data-segment"]  # both libraries, agreeing
    assert record["payloadSize"] == payload_size
    ours = piece_cid_v2(record["pieceCid"], payload_size, record["pieceSize"])
    assert ours == record["pieceCidV2"], record
    info = parse_piece_cid_v2(ours)
    assert (info.v1, info.payload_size, info.piece_size) == (
        record["pieceCid"],
        payload_size,
        record["pieceSize"],
    )


def test_v2_of_every_commp_vector_matches_the_libraries(js: Harness, tmp_path: Path) -> None:
    groups: dict[int | None, list[dict[str, Any]]] = {}
    for vector in VECTORS["vectors"]:
        groups.setdefault(vector["minPieceSize"], []).append(vector)
    checked = 0
    for min_piece_size, vectors in groups.items():
        paths = []
        for vector in vectors:
            path = tmp_path / f"{vector['input']}-{vector['size']}.bin"
            path.write_bytes(vector_input(vector["input"], vector["size"]))
            paths.append(path)
        records = js.commp(paths, min_piece_size=min_piece_size, impl="both")
        for vector, record in zip(vectors, records, strict=True):
            assert record["pieceCid"] == vector["pieceCid"]  # the golden v1 CID
            check(record, vector["size"])
            checked += 1
    assert checked == len(VECTORS["vectors"])


def test_v2_at_the_natural_piece_size_edges(js: Harness, tmp_path: Path) -> None:
    paths = []
    for size in NATURAL_SIZES:
        path = tmp_path / f"{size}.bin"
        path.write_bytes(hashlib.shake_256(f"edge:{size}".encode()).digest(size))
        paths.append(path)
    records = js.commp(paths, impl="both")
    for size, record in zip(NATURAL_SIZES, records, strict=True):
        check(record, size)


@pytest.mark.parametrize(("car_size", "file_size", "piece_size"), PADDED)
def test_v2_of_padded_cars_counts_the_written_zeros_as_payload(
    js: Harness, tmp_path: Path, car_size: int, file_size: int, piece_size: int
) -> None:
    # Singularity's zeros are in the file a storage provider downloads, so they are payload;
    # only the part of the piece beyond the file is FRC-0069 padding.
    path = tmp_path / "piece.car"
    data = hashlib.shake_256(f"padded:{car_size}".encode()).digest(car_size)
    path.write_bytes(data + bytes(file_size - car_size))
    [record] = js.commp([path], min_piece_size=piece_size, impl="both")
    assert record["pieceSize"] == piece_size
    check(record, file_size)
    expected_padding = piece_size * 127 // 128 - file_size
    assert parse_piece_cid_v2(record["pieceCidV2"]).padding == expected_padding


def test_the_commp_command_prints_the_libraries_v2(js: Harness, tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "data.bin"
    path.write_bytes(hashlib.shake_256(b"commp --v2").digest(70_000))
    for min_piece in (None, 1 << 20):
        [record] = js.commp([path], min_piece_size=min_piece, impl="both")
        args = ["commp", "--v2", "--json", str(path)]
        if min_piece is not None:
            args += ["--min-piece-size", str(min_piece)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["pieceCidV2"] == record["pieceCidV2"]
