from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dataset_worker.cli.common as cli_common
from dataset_worker.cli import app
from dataset_worker.cli import commp as commp_cli
from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import commp_of, finalize

ZEROS_1K_CID = "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy"
runner = CliRunner()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_text_output(tmp_path: Path) -> None:
    result = runner.invoke(app, ["commp", str(write(tmp_path, "z", bytes(1024)))])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"Piece CID:    {ZEROS_1K_CID}",
        "Payload size: 1024",
        "Piece size:   2048",
    ]


def test_json_output_streams_a_file_larger_than_one_read(tmp_path: Path) -> None:
    data = hashlib.shake_256(b"cli").digest(2 * commp_cli.READ_SIZE + 3)
    result = runner.invoke(app, ["commp", "--json", str(write(tmp_path, "big", data))])
    assert result.exit_code == 0, result.output
    expected = commp_of(data)
    assert json.loads(result.stdout) == {
        "pieceCid": cid_to_str(piece_cid(expected.commitment)),
        "payloadSize": len(data),
        "pieceSize": expected.piece_size,
    }


def test_min_piece_size_pads(tmp_path: Path) -> None:
    data = hashlib.shake_256(b"cli-min").digest(1000)
    path = write(tmp_path, "small", data)
    result = runner.invoke(app, ["commp", str(path), "--json", "--min-piece-size", "1MiB"])
    assert result.exit_code == 0, result.output
    commitment, size = finalize(commp_of(data), 1 << 20)
    assert size == 1 << 20
    assert json.loads(result.stdout) == {
        "pieceCid": cid_to_str(piece_cid(commitment)),
        "payloadSize": 1000,
        "pieceSize": 1 << 20,
    }


def test_min_piece_size_below_natural_keeps_the_piece(tmp_path: Path) -> None:
    path = write(tmp_path, "z", bytes(1024))
    result = runner.invoke(app, ["commp", str(path), "--json", "--min-piece-size", "128"])
    assert json.loads(result.stdout)["pieceCid"] == ZEROS_1K_CID


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("1000", 'must be a power of two from 128 B to 64 GiB, got "1000"'),
        ("64", "must be a power of two"),
        ("128GiB", "must be a power of two"),
        ("lots", 'invalid size "lots"'),
    ],
)
def test_bad_min_piece_size(tmp_path: Path, size: str, message: str) -> None:
    path = write(tmp_path, "z", bytes(1024))
    result = runner.invoke(app, ["commp", str(path), "--min-piece-size", size])
    assert result.exit_code == 1
    assert "--min-piece-size" in result.stderr
    assert message in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.car"
    result = runner.invoke(app, ["commp", str(missing)])
    assert result.exit_code == 1
    assert f"{missing}: no such file" in result.stderr


def test_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["commp", str(tmp_path)])
    assert result.exit_code == 1
    assert "is a directory" in result.stderr


def test_too_small_file(tmp_path: Path) -> None:
    path = write(tmp_path, "tiny", bytes(64))
    result = runner.invoke(app, ["commp", str(path)])
    assert result.exit_code == 1
    assert f"{path}: too small for a piece: 64 bytes, commP needs at least 65" in result.stderr


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated: these tests may run as root, which reads files whatever their mode.
    path = write(tmp_path, "secret", bytes(100))

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cli_common, "open", denied, raising=False)
    result = runner.invoke(app, ["commp", str(path)])
    assert result.exit_code == 1
    assert f"{path}: cannot read: permission denied" in result.stderr


def test_read_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "bad-disk", bytes(1000))
    real_open = open

    class FailingFile(io.FileIO):
        def readinto(self, buffer: object) -> int:
            raise OSError(5, "Input/output error")

    def failing_open(file: Path, *args: object, **kwargs: object) -> io.FileIO:
        real_open(file).close()
        return FailingFile(file)

    monkeypatch.setattr(cli_common, "open", failing_open, raising=False)
    result = runner.invoke(app, ["commp", str(path)])
    assert result.exit_code == 1
    assert f"{path}: cannot read: Input/output error" in result.stderr


def test_not_a_regular_file() -> None:
    result = runner.invoke(app, ["commp", "/dev/null"])
    assert result.exit_code == 1
    assert "/dev/null: not a regular file" in result.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_for_large_files_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    big = cli_common.PROGRESS_MIN_SIZE
    with cli_common.file_progress(big, "f") as advance:
        assert advance is None  # stderr is not a terminal under pytest
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with cli_common.file_progress(big - 1, "f") as advance:
        assert advance is None
    with cli_common.file_progress(big, "file.car") as advance:
        assert advance is not None
        advance(big)
    assert "file.car" in terminal.getvalue()


# The v2 piece CID of 1024 zero bytes, as the npm libraries make it (tests/interop/commp.mjs).
ZEROS_1K_CID_V2 = "bafkzcibd6adqn7d6skbjnziw7kw6tbvsr6jnisspes4tkscsem3wu6mqe66br6bt"


def test_v2_text_and_json(tmp_path: Path) -> None:
    path = write(tmp_path, "z", bytes(1024))
    result = runner.invoke(app, ["commp", "--v2", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"Piece CID:    {ZEROS_1K_CID}",
        f"Piece CID v2: {ZEROS_1K_CID_V2}",
        "Payload size: 1024",
        "Piece size:   2048",
    ]
    result = runner.invoke(app, ["commp", "--v2", "--json", str(path)])
    assert json.loads(result.stdout) == {
        "pieceCid": ZEROS_1K_CID,
        "pieceCidV2": ZEROS_1K_CID_V2,
        "payloadSize": 1024,
        "pieceSize": 2048,
    }
    plain = runner.invoke(app, ["commp", "--json", str(path)])
    assert "pieceCidV2" not in json.loads(plain.stdout)
