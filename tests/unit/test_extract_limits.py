"""`extract` holds a hostile tree to limits before writing anything: names and paths the file
system would refuse (NAME_MAX, PATH_MAX), and trees of too many files or bytes."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dataset_worker.cli import app
from dataset_worker.content.cid import EMPTY_FILE_CID, cid_to_str
from tests.unit.test_extract import Block, directory, raw, write_car

runner = CliRunner()


def run_extract(tmp_path: Path, root: bytes, blocks: list[Block], *extra: str) -> tuple[int, str]:
    car = write_car(tmp_path / "tree.car", root, blocks)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["extract", "--root", cid_to_str(root), "-o", str(out), str(car), *extra]
    )
    return result.exit_code, result.output


def written(tmp_path: Path) -> list[str]:
    out = tmp_path / "out"
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []


def test_a_name_longer_than_name_max_is_refused_before_any_write(tmp_path: Path) -> None:
    data = raw(b"first file")
    long_name = b"z" * 300
    root = directory({b"a.txt": data[0], long_name: data[0]})
    code, output = run_extract(tmp_path, root[0], [root, data])
    assert code == 1
    assert "'" + "z" * 300 + "': the name is 300 bytes" in output, output
    assert "NAME_MAX 255" in output
    assert ".dw-extract-" not in output  # the entry is named, not a temporary file
    assert written(tmp_path) == []  # a.txt (first in order) was not written either


def test_a_path_longer_than_path_max_is_refused_before_any_write(tmp_path: Path) -> None:
    data = raw(b"deep")
    blocks: list[Block] = [data]
    child = directory({b"f.txt": data[0]})
    blocks.append(child)
    for _ in range(20):  # 20 folders of 250-byte names: over 4096 bytes
        child = directory({b"d" * 250: child[0]})
        blocks.append(child)
    root = directory({b"a.txt": data[0], b"deep": child[0]})
    code, output = run_extract(tmp_path, root[0], [root, *blocks])
    assert code == 1
    assert "longer than the system allows (PATH_MAX" in output, output
    assert written(tmp_path) == []


def test_too_many_entries_are_refused_before_any_write(tmp_path: Path) -> None:
    empty: Block = (EMPTY_FILE_CID, b"")
    root = directory({f"f{i:05d}".encode(): EMPTY_FILE_CID for i in range(2000)})
    code, output = run_extract(tmp_path, root[0], [root, empty], "--max-files", "1000")
    assert code == 1
    assert "the tree holds 2000 files and folders, more than --max-files 1000" in output, output
    assert written(tmp_path) == []
    code, output = run_extract(tmp_path, root[0], [root, empty])
    assert code == 0, output  # the default is generous
    assert len(written(tmp_path)) == 2000


def test_too_many_bytes_are_refused_before_any_write(tmp_path: Path) -> None:
    data = raw(b"x" * 5000)
    root = directory({b"a.bin": data[0], b"b.bin": data[0]})
    code, output = run_extract(tmp_path, root[0], [root, data], "--max-bytes", "8KiB")
    assert code == 1
    assert "the tree holds 10000 bytes, more than --max-bytes 8192" in output, output
    assert written(tmp_path) == []
    code, output = run_extract(tmp_path, root[0], [root, data], "--max-bytes", "lots")
    assert code == 1 and "--max-bytes:" in output
