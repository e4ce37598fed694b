"""Dev aid: prepare a folder into CAR files with the content core alone, as Singularity would.

Data CARs hold the ranges (1 MiB raw leaves, range nodes); one DAG CAR holds the directory nodes
(basic or HAMT) and the file-level nodes of split files, with the root directory as its root.
The output is meant for the independent JS verifiers (scripts/verify-car.sh --sample runs both).
With --make-sample it first writes a sample tree: a file split into several ranges, an empty
file, nested folders, an empty folder and a folder big enough to become a HAMT.

Usage: .venv/bin/python scripts/sample_dataset_cars.py SOURCE_DIR CAR_DIR [--make-sample]
       [--range-size BYTES] [--max-car-size BYTES]      (prints the root CID)
"""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dataset_worker.content.car import CarWriter
from dataset_worker.content.cid import cid_to_str
from dataset_worker.content.directory import DirectoryNode, build_directory
from dataset_worker.content.packer import RangeSource, pack_ranges
from dataset_worker.content.unixfs import assemble_file_from_links

CAR_BLOCK_OVERHEAD = 39  # varint + CID per 1 MiB leaf, good enough to size CARs here


@dataclass
class FileRanges:
    path: Path
    size: int
    ranges: list[tuple[int, int]]
    cids: dict[int, bytes] = field(default_factory=dict)


def make_sample(root: Path) -> None:
    """A small tree that exercises every DAG shape Singularity produces."""
    (root / "nested" / "a" / "b").mkdir(parents=True, exist_ok=True)
    (root / "void").mkdir(exist_ok=True)
    (root / "many").mkdir(exist_ok=True)
    (root / "split.bin").write_bytes(os.urandom(5 * (1 << 20) + 3))
    (root / "empty.bin").write_bytes(b"")
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "nested" / "a" / "b" / "deep.txt").write_bytes(b"deep\n")
    (root / "nested" / "a" / "mid.bin").write_bytes(os.urandom(1500000))
    for i in range(5000):  # 5000 * (len(name) + 36) > 256 KiB: a HAMT
        name = f"entry-{i:06d}-with-a-fairly-long-name.txt"
        (root / "many" / name).write_bytes(f"{i}\n".encode())


def split(size: int, range_size: int) -> list[tuple[int, int]]:
    if size == 0:
        return [(0, 0)]
    return [(off, min(range_size, size - off)) for off in range(0, size, range_size)]


def pack(files: list[FileRanges], car_dir: Path, max_car_size: int) -> None:
    """Group ranges in scan order into CARs below max_car_size and write them."""
    batches: list[list[tuple[FileRanges, int, int]]] = [[]]
    estimate = 59
    for item in files:
        for offset, length in item.ranges:
            cost = length + CAR_BLOCK_OVERHEAD * max(1, -(-length // (1 << 20))) + 100
            if batches[-1] and estimate + cost > max_car_size:
                batches.append([])
                estimate = 59
            batches[-1].append((item, offset, length))
            estimate += cost
    for number, batch in enumerate(batches):
        sources = [
            RangeSource((id(item), offset), offset, length, _opener(item.path, offset))
            for item, offset, length in batch
        ]
        with open(car_dir / f"data-{number:03d}.car", "wb") as out:
            packed = pack_ranges(sources, CarWriter(out))
        for (item, offset, _), result in zip(batch, packed.ranges, strict=True):
            assert result.cid is not None
            item.cids[offset] = result.cid


def _opener(path: Path, offset: int) -> Callable[[], io.BufferedReader]:
    def open_range() -> io.BufferedReader:
        stream = open(path, "rb")  # closed by the packer
        stream.seek(offset)
        return stream

    return open_range


def build_tree(
    source: Path, files: list[FileRanges]
) -> tuple[bytes, list[tuple[DirectoryNode, list[tuple[bytes, bytes]]]]]:
    """File CIDs, then directories bottom-up; returns the root CID and every directory with
    the split-file nodes it carries (Singularity's `Additional`)."""
    entries: dict[Path, dict[str, tuple[bytes, int]]] = {}
    extra: dict[Path, list[tuple[bytes, bytes]]] = {}
    for item in files:
        links = [(item.cids[offset], length) for offset, length in item.ranges]
        dag = assemble_file_from_links(links)
        entries.setdefault(item.path.parent, {})[item.path.name] = (dag.root_cid, item.size)
        extra.setdefault(item.path.parent, []).extend(dag.nodes)
    for folder in list(entries):  # folders holding only folders need a node too
        for ancestor in folder.parents:
            if ancestor == source or source in ancestor.parents:
                entries.setdefault(ancestor, {})
    built: list[tuple[DirectoryNode, list[tuple[bytes, bytes]]]] = []
    root_cid = b""
    for folder in sorted(entries, key=lambda p: len(p.parts), reverse=True):
        node = build_directory(entries[folder])
        built.append((node, extra.get(folder, [])))
        if folder == source:
            root_cid = node.cid
        else:
            entries[folder.parent][folder.name] = (node.cid, node.size)
    return root_cid, built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("car_dir", type=Path)
    parser.add_argument("--make-sample", action="store_true")
    parser.add_argument("--range-size", type=int, default=2 << 20)
    parser.add_argument("--max-car-size", type=int, default=4 << 20)
    args = parser.parse_args()
    source, car_dir = args.source.resolve(), args.car_dir
    if args.make_sample:
        make_sample(source)
    car_dir.mkdir(parents=True, exist_ok=True)
    files = [
        FileRanges(path, path.stat().st_size, split(path.stat().st_size, args.range_size))
        for path in sorted(p for p in source.rglob("*") if p.is_file())
    ]
    pack(files, car_dir, args.max_car_size)
    root_cid, directories = build_tree(source, files)
    with open(car_dir / "dag.car", "wb") as out:
        writer = CarWriter(out, root_cid)
        for node, additional in directories:
            for cid, block in sorted(node.blocks) + sorted(additional):
                writer.write_block(cid, block)
    print(cid_to_str(root_cid))


if __name__ == "__main__":
    main()
