"""Interop: what our content core writes, checked by the ecosystem's npm libraries (tests/interop).

- commP: the harness's piece CIDs (fr32 WASM hasher) equal ours, library and `dataset-worker
  commp` CLI, on the committed vectors and on freshly generated files;
- CARs from our CarWriter pass verify-car.mjs and ipfs-unixfs-exporter rebuilds the tree from
  them (a basic directory, a HAMT, a multi-leaf file, empty files and folders, zero padding);
- a corrupted CAR is rejected, so these checks can fail.

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
from dataset_worker.content.car import CarReader, CarWriter
from dataset_worker.content.chunker import CHUNK_SIZE
from dataset_worker.content.cid import cid_to_str, piece_cid, raw_cid
from dataset_worker.content.commp import commp_of, finalize
from dataset_worker.content.directory import build_directory, build_hamt_directory
from dataset_worker.content.unixfs import assemble_file_from_links
from dataset_worker.content.varint import encode_uvarint
from tests.interop_harness import Harness, assert_same_files, harness

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "commp.json").read_text()
)
MIB = 1 << 20
PIECE = MIB  # Singularity's default min piece size
PADDED_SIZE = 4 * MIB * 127 // 128  # Singularity's zero padding for a small CAR in a 4 MiB piece
HAMT_FOLDER = "sharded"  # built as a HAMT whatever its size, to exercise shard lookups


@pytest.fixture(scope="module")
def js() -> Harness:
    """The installed harness (skip, or fail in CI, without it)."""
    return harness()


def vector_input(kind: str, size: int) -> bytes:
    """A vector's input, as the vectors file's "generator" field describes it."""
    if kind == "zeros":
        return bytes(size)
    return hashlib.shake_256(f"{VECTORS['seed']}:{size}".encode()).digest(size)


def ours(data: bytes, min_piece_size: int | None) -> tuple[str, int]:
    """(piece CID, piece size) by our library."""
    result = commp_of(data)
    commitment, size = result.commitment, result.piece_size
    if min_piece_size is not None:
        commitment, size = finalize(result, min_piece_size)
    return cid_to_str(piece_cid(commitment)), size


# --- commP ----------------------------------------------------------------------------------


def test_commp_vectors_match_the_harness_and_ours(js: Harness, tmp_path: Path) -> None:
    groups: dict[int | None, list[dict[str, Any]]] = {}
    for vector in VECTORS["vectors"]:
        groups.setdefault(vector["minPieceSize"], []).append(vector)
    for min_piece_size, vectors in groups.items():
        paths = []
        for vector in vectors:
            path = tmp_path / f"{vector['input']}-{vector['size']}.bin"
            if not path.exists():
                path.write_bytes(vector_input(vector["input"], vector["size"]))
            paths.append(path)
        records = js.commp(paths, min_piece_size=min_piece_size)
        for vector, path, record in zip(vectors, paths, records, strict=True):
            assert record["path"] == str(path)
            harness_says = (record["pieceCid"], record["pieceSize"], record["payloadSize"])
            assert harness_says == (vector["pieceCid"], vector["pieceSize"], vector["size"])
            assert record["naturalPieceSize"] == vector["naturalPieceSize"]
            assert ours(path.read_bytes(), min_piece_size) == harness_says[:2]


GENERATED = [65, 127, 128, 129, 1016, 1017, 4097, 127 * 1024 + 1, 3 * MIB + 5]


@pytest.mark.parametrize("min_piece_size", [None, PIECE])
def test_commp_cli_matches_the_harness_on_generated_files(
    js: Harness, tmp_path: Path, min_piece_size: int | None
) -> None:
    paths = []
    for size in GENERATED:
        # Mostly random bytes with a zero run in the middle: Fr32 must not treat zeros specially.
        data = bytearray(hashlib.shake_256(f"interop:{size}".encode()).digest(size))
        data[size // 3 : size // 2] = bytes(size // 2 - size // 3)
        path = tmp_path / f"generated-{size}.bin"
        path.write_bytes(data)
        paths.append(path)
    records = js.commp(paths, min_piece_size=min_piece_size)
    runner = CliRunner()
    option = [] if min_piece_size is None else ["--min-piece-size", str(min_piece_size)]
    for path, record in zip(paths, records, strict=True):
        result = runner.invoke(app, ["commp", "--json", *option, str(path)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {
            "pieceCid": record["pieceCid"],
            "payloadSize": record["payloadSize"],
            "pieceSize": record["pieceSize"],
        }


# --- CARs -----------------------------------------------------------------------------------


def make_source(root: Path) -> None:
    """A small tree with the shapes the exporter must follow."""
    files = {
        "hello.txt": b"hello\n",
        "empty.bin": b"",
        "split.bin": hashlib.shake_256(b"split").digest(2 * CHUNK_SIZE + 12345),  # 3 leaves
        "exactly one leaf.bin": hashlib.shake_256(b"one").digest(CHUNK_SIZE),
        "nested/deeper/ünïcødé 日本.txt": "こんにちは".encode(),
    }
    for i in range(300):  # enough entries for child shards below the HAMT's root
        files[f"{HAMT_FOLDER}/entry-{i:03d}.txt"] = f"{i}\n".encode()
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    (root / "empty folder").mkdir()


def write_cars(source: Path, car_dir: Path, *, pad_to: int | None = None) -> tuple[str, list[Path]]:
    """Prepare `source` with the content core: data.car holds every leaf (its first block is
    its root, as in a data piece), dag.car the file and directory nodes under the root
    directory. With `pad_to`, data.car is filled with zeros up to that size, as Singularity pads
    a small CAR. Returns the root CID and the CARs."""
    car_dir.mkdir()
    dag_blocks: list[tuple[bytes, bytes]] = []
    with (car_dir / "data.car").open("wb") as out:
        data = CarWriter(out)

        def add_folder(folder: Path) -> tuple[bytes, int]:
            entries: dict[str, tuple[bytes, int]] = {}
            for child in sorted(folder.iterdir()):
                if child.is_dir():
                    entries[child.name] = add_folder(child)
                    continue
                content = child.read_bytes()
                links = []
                for offset in range(0, max(len(content), 1), CHUNK_SIZE):
                    leaf = content[offset : offset + CHUNK_SIZE]
                    cid = raw_cid(leaf)
                    data.write_block(cid, leaf)
                    links.append((cid, len(leaf)))
                dag = assemble_file_from_links(links)
                dag_blocks.extend(dag.nodes)
                entries[child.name] = (dag.root_cid, dag.size)
            build = build_hamt_directory if folder.name == HAMT_FOLDER else build_directory
            node = build(entries)
            dag_blocks.extend(node.blocks)
            return node.cid, node.size

        root, _ = add_folder(source)
        if pad_to is not None:
            out.write(bytes(pad_to - data.bytes_written))
    with (car_dir / "dag.car").open("wb") as out:
        dag = CarWriter(out, root)
        for cid, block in dag_blocks:
            dag.write_block(cid, block)
    return cid_to_str(root), [car_dir / "data.car", car_dir / "dag.car"]


@pytest.fixture
def prepared(tmp_path: Path) -> tuple[Path, str, list[Path]]:
    """A source tree, its root CID and its CARs (data.car padded to 127/128 of a 4 MiB piece)."""
    source = tmp_path / "source"
    source.mkdir()
    make_source(source)
    root, cars = write_cars(source, tmp_path / "cars", pad_to=PADDED_SIZE)
    return source, root, cars


def test_our_cars_pass_verify_car_and_export_to_the_same_tree(
    js: Harness, tmp_path: Path, prepared: tuple[Path, str, list[Path]]
) -> None:
    source, root, cars = prepared
    data, dag = js.verify_car(cars)
    assert data["ok"] and dag["ok"], (data["errors"], dag["errors"])
    assert data["paddingBytes"] > 0 and data["size"] == PADDED_SIZE
    assert data["codecs"] == {"raw": 3 + 4 + 300}  # split.bin has 3 leaves, 4 files have 1
    assert dag["roots"] == [root] and dag["rootsPresent"] == [True]
    assert dag["unixfs"]["hamt-sharded-directory"] > 1  # child shards, not just the root
    assert dag["unixfs"]["file"] == 1  # split.bin's node; other files are single raw leaves

    summary = js.export(root, tmp_path / "exported", cars)
    assert summary["type"] == "directory"
    assert summary["blocksUsed"] == summary["blocks"]  # nothing written that the tree lacks
    assert assert_same_files(tmp_path / "exported", source) == summary["files"] == 305


def flip_block_byte(car: Path) -> str:
    """Flip one bit in the middle of the data of the CAR's largest block; returns its CID."""
    with car.open("rb") as stream:
        block = max(CarReader(stream), key=lambda b: len(b.data))
    varint = encode_uvarint(len(block.cid) + len(block.data))
    position = block.car_offset + len(varint) + len(block.cid) + len(block.data) // 2
    raw = bytearray(car.read_bytes())
    raw[position] ^= 0x01
    car.write_bytes(raw)
    return cid_to_str(block.cid)


def test_a_flipped_byte_in_a_block_is_rejected(
    js: Harness, tmp_path: Path, prepared: tuple[Path, str, list[Path]]
) -> None:
    _, root, [data_car, dag_car] = prepared
    bad_cid = flip_block_byte(data_car)  # a raw leaf: only its hash can tell
    proc = js.run("verify-car.mjs", dag_car, data_car)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    good, bad = (json.loads(line) for line in proc.stdout.splitlines())
    assert good["ok"] and not bad["ok"]
    assert len(bad["errors"]) == 1 and bad_cid in bad["errors"][0], bad["errors"]
    assert "does not match its CID" in bad["errors"][0]
    export = js.run("export.mjs", "--root", root, tmp_path / "exported", data_car, dag_car)
    assert export.returncode == 1 and bad_cid in export.stderr, export.stderr


def test_a_non_zero_byte_in_the_padding_is_rejected(
    js: Harness, prepared: tuple[Path, str, list[Path]]
) -> None:
    _, _, [data_car, _] = prepared
    raw = bytearray(data_car.read_bytes())
    raw[-100] = 0x01
    data_car.write_bytes(raw)
    proc = js.run("verify-car.mjs", data_car)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "non-zero byte" in json.loads(proc.stdout)["errors"][0]


def test_a_truncated_car_is_rejected(js: Harness, prepared: tuple[Path, str, list[Path]]) -> None:
    _, _, [_, dag_car] = prepared
    dag_car.write_bytes(dag_car.read_bytes()[:-10])
    proc = js.run("verify-car.mjs", dag_car)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert not json.loads(proc.stdout)["ok"]
