"""`fetch-piece` against attackers: a symlink planted where it writes (another user on a shared
folder), and hostile servers (trailing zeros that pass commP, a slow drip)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.provider_support import (
    Piece,
    PreparedTree,
    Provider,
    fresh_database_url,
    prepare_tree,
    running_provider,
)
from tests.support.hostileserver import HostilePiece, hostile_server

VICTIM_BYTES = b"the victim's precious bytes\n"


@dataclass(frozen=True)
class Served:
    tree: PreparedTree
    provider: Provider


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("hostile")
    url = fresh_database_url("sqlite", request, folder)
    tree = prepare_tree(url, folder)
    for provider in running_provider(url, folder):
        yield Served(tree, provider)


def fetch(base_url: str, cid: str, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dataset_worker", "fetch-piece", base_url, cid]
    return subprocess.run(
        [*command, "-o", str(output), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_a_planted_part_symlink_is_never_written_through(
    served: Served, tmp_path: Path, outcome: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(VICTIM_BYTES)
    target = tmp_path / "piece.car"
    target.with_name("piece.car.part").symlink_to(victim)
    piece = served.tree.piece()
    wrong = bytearray(piece.path.read_bytes())
    wrong[200] ^= 0xFF  # a download that fails its piece CID check
    with hostile_server(HostilePiece(bytes(wrong))) as hostile:
        base = served.provider.url if outcome == "success" else hostile
        result = fetch(base, piece.cid, target)
    assert victim.read_bytes() == VICTIM_BYTES  # neither overwritten nor truncated
    assert result.returncode == 1
    assert "piece.car.part is a symbolic link: refusing to write through it" in result.stderr, (
        result.stderr
    )
    assert not target.exists()


def test_a_symlink_output_is_refused(served: Served, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(VICTIM_BYTES)
    target = tmp_path / "piece.car"
    target.symlink_to(victim)
    result = fetch(served.provider.url, served.tree.piece().cid, target)
    assert result.returncode == 1
    assert "is a symbolic link: refusing to replace it" in result.stderr, result.stderr
    assert victim.read_bytes() == VICTIM_BYTES
    assert target.is_symlink()


def test_a_leftover_part_file_of_ours_is_replaced(served: Served, tmp_path: Path) -> None:
    piece = served.tree.piece()
    target = tmp_path / "piece.car"
    target.with_name("piece.car.part").write_bytes(b"an interrupted run's bytes")
    result = fetch(served.provider.url, piece.cid, target)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == piece.path.read_bytes()
    assert not target.with_name("piece.car.part").exists()
    assert "length matches the provider's metadata" in result.stdout


def _metadata(piece: Piece, file_size: int) -> dict[str, object]:
    return {"pieceCid": piece.cid, "pieceSize": piece.piece_size, "fileSize": file_size}


def test_trailing_zeros_pass_commp_but_not_the_length_check(served: Served, tmp_path: Path) -> None:
    piece = served.tree.piece()
    original = piece.path.read_bytes()
    # The piece is zero-padded to piece size * 127/128: without 1000 of those zeros it has the
    # same commP (the hash pads them back), yet it is not the piece's bytes.
    assert original.endswith(bytes(1000))
    padded = original[:-1000]
    target = tmp_path / "piece.car"
    # Without metadata the zeros pass (a v1 CID has no length): the output says so.
    with hostile_server(HostilePiece(padded)) as url:
        unchecked = fetch(url, piece.cid, target)
    assert unchecked.returncode == 0, unchecked.stderr
    assert "length not checked: the provider offers no piece metadata" in unchecked.stdout
    target.unlink()
    with hostile_server(HostilePiece(padded, _metadata(piece, len(original)))) as url:
        result = fetch(url, piece.cid, target)
    assert result.returncode == 1
    assert (
        f"Content-Length {len(padded)}, but the provider's piece metadata records "
        f"{len(original)} bytes" in result.stderr
    ), result.stderr
    assert not target.exists()
    assert not os.path.exists(f"{target}.part")


def test_a_slow_drip_server_stalls_out_naming_the_range(served: Served, tmp_path: Path) -> None:
    piece = served.tree.piece()
    original = piece.path.read_bytes()
    target = tmp_path / "piece.car"
    dripping = HostilePiece(original, _metadata(piece, len(original)), drip=0.05)
    with hostile_server(dripping) as url:
        result = fetch(url, piece.cid, target, "--connections", "1", "--stall-timeout", "1")
    assert result.returncode == 1
    assert re.search(
        r"bytes 0-\d+: stalled, less than \d+ bytes in 1s \(--stall-timeout\)", result.stderr
    ), result.stderr
    assert not target.exists()
    assert not os.path.exists(f"{target}.part")


def test_another_users_planted_symlink_in_a_shared_folder_is_refused(served: Served) -> None:
    """The attack as it happens: `nobody` plants FILE.part in a sticky world-writable folder
    (like /tmp), pointing at a file of ours; we download FILE there."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("planting as another user needs root (to become nobody) and setpriv")
    shared = Path(tempfile.mkdtemp(prefix="dw-sticky-"))
    try:
        shared.chmod(0o1777)
        victim = shared / "victim.txt"
        victim.write_bytes(VICTIM_BYTES)
        target = shared / "piece.car"
        planted = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             "ln", "-s", str(victim), f"{target}.part"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert planted.returncode == 0, planted.stderr
        assert os.lstat(f"{target}.part").st_uid != 0
        result = fetch(served.provider.url, served.tree.piece().cid, target)
        assert result.returncode == 1
        assert "piece.car.part is a symbolic link: refusing to write through it" in result.stderr
        assert victim.read_bytes() == VICTIM_BYTES
        assert not target.exists()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
