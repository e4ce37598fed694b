"""`dataset-worker cid FILE [--json]`."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dataset_worker.cli.common as cli_common
from dataset_worker.cli import app
from dataset_worker.cli import cid as cid_cli
from dataset_worker.content.cid import cid_to_str, raw_cid
from dataset_worker.content.unixfs import assemble_file_from_links

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["cid", *args])
    return result.exit_code, result.stdout, result.stderr


def test_prints_the_cid_of_a_small_file(tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello")
    code, out, _ = _run(str(path))
    assert code == 0
    assert out.strip() == cid_to_str(raw_cid(b"hello"))


def test_json_output(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = os.urandom((1 << 20) + 5)
    path.write_bytes(data)
    code, out, _ = _run(str(path), "--json")
    assert code == 0
    expected = assemble_file_from_links(
        [(raw_cid(data[: 1 << 20]), 1 << 20), (raw_cid(data[1 << 20 :]), 5)]
    )
    assert json.loads(out) == {"cid": cid_to_str(expected.root_cid), "size": len(data)}


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    code, out, _ = _run(str(path), "--json")
    assert code == 0
    assert json.loads(out) == {
        "cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        "size": 0,
    }


def test_a_file_split_into_ranges_links_the_range_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cid_cli, "RANGE_SIZE", 4)
    path = tmp_path / "ten"
    path.write_bytes(b"0123456789")
    code, out, _ = _run(str(path))
    expected = assemble_file_from_links(
        [(raw_cid(b"0123"), 4), (raw_cid(b"4567"), 4), (raw_cid(b"89"), 2)]
    )
    assert code == 0
    assert out.strip() == cid_to_str(expected.root_cid)


def test_missing_file_fails_clearly(tmp_path: Path) -> None:
    code, out, err = _run(str(tmp_path / "nope.bin"))
    assert code != 0
    assert out == ""
    assert "nope.bin: no such file" in err


def test_directory_fails_clearly(tmp_path: Path) -> None:
    code, _, err = _run(str(tmp_path))
    assert code != 0
    assert "is a directory" in err


def test_special_file_fails_clearly() -> None:
    code, _, err = _run(os.devnull)
    assert code != 0
    assert "not a regular file" in err


def test_unreadable_file_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"x")
    if os.geteuid() == 0:  # root opens any file whatever its mode: refuse the open instead

        def refuse(*_args: object, **_kwargs: object) -> None:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

        monkeypatch.setattr(cli_common, "open", refuse, raising=False)
    else:
        path.chmod(0)
    code, _, err = _run(str(path))
    assert code != 0
    assert "secret: cannot read: permission denied" in err


def test_read_error_midway_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "flaky"
    path.write_bytes(b"x" * 100)

    class FailingReader(io.FileIO):
        def readinto(self, buffer: object) -> int:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(
        cli_common, "open", lambda name, mode, **_: FailingReader(name, mode), raising=False
    )
    code, _, err = _run(str(path))
    assert code != 0
    assert "flaky: cannot read: Input/output error" in err
