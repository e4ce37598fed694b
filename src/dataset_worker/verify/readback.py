"""Independent read-back of a prepared dataset: CARs → blocks → the file tree, byte for byte.

It uses only its own CAR framing parser and the dag-pb/UnixFS decoders, never the code that
wrote the CARs: every block is re-hashed against its CID, then the tree is walked from the root
CID (basic and HAMT directories, raw leaves and dag-pb file nodes) and each file is compared with
the original. The pieces live in `verify.car` and `verify.tree`; this module keeps the one-call
check the tests use.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dataset_worker.verify.tree import BlockStore, SelfCheckError, iter_file_chunks, walk_tree

__all__ = ["BlockStore", "SelfCheckError", "iter_file_chunks", "verify_tree", "walk_tree"]


def verify_tree(cars: Iterable[Path], root: bytes, original: Path) -> int:
    """Check every CAR, rebuild every file under `root` and compare it with `original`.

    Files present in `original` but not in the tree fail the check, except empty files' parents
    being empty directories (those are never part of the DAG). Returns the number of files.
    """
    store = BlockStore()
    try:
        for car in cars:
            store.add_car(car)
        seen = _compare_files(store, root, original)
    finally:
        store.close()
    expected = {p.relative_to(original).as_posix() for p in original.rglob("*") if p.is_file()}
    missing = sorted(expected - seen)
    if missing:
        raise SelfCheckError(f"{len(missing)} files are missing from the DAG, e.g. {missing[:3]}")
    return len(seen)


def _compare_files(store: BlockStore, root: bytes, original: Path) -> set[str]:
    seen: set[str] = set()
    for path, cid in walk_tree(store, root):
        source = original / path
        if not source.is_file():
            raise SelfCheckError(f"{path} is in the DAG but not in {original}")
        with open(source, "rb") as stream:
            for chunk in iter_file_chunks(store, cid):
                if stream.read(len(chunk)) != chunk:
                    raise SelfCheckError(f"{path}: rebuilt bytes differ from the original")
            if stream.read(1):
                raise SelfCheckError(f"{path}: rebuilt file is shorter than the original")
        seen.add(path)
    return seen
