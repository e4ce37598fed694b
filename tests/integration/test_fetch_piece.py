"""`dataset-worker fetch-piece` and `extract` against a real content provider: every piece comes
back verified, the tree comes back byte for byte, and a connection reset mid-body is survived."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dataset_worker.content.piececid2 import piece_cid_v2
from tests.integration.provider_support import (
    EMPTY_FOLDERS,
    PreparedTree,
    Provider,
    folders_with_files,
    fresh_database_url,
    prepare_tree,
    running_provider,
    tree_files,
    tree_folders,
)

UNKNOWN_PIECE = "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy"


@dataclass(frozen=True)
class Served:
    tree: PreparedTree
    provider: Provider
    folder: Path


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("fetch")
    url = fresh_database_url(request.param, request, folder)
    tree = prepare_tree(url, folder)
    for provider in running_provider(url, folder):
        yield Served(tree, provider, folder)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `dataset-worker ARGS` as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "dataset_worker", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def fetch(base_url: str, cid: str, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("fetch-piece", base_url, cid, "-o", str(output), *extra)


def test_every_piece_fetched_and_extracted_gives_the_tree_back(
    served: Served, tmp_path: Path
) -> None:
    fetched = tmp_path / "pieces"
    fetched.mkdir()
    for piece in served.tree.pieces:
        target = fetched / f"{piece.cid}.car"
        result = fetch(served.provider.url, piece.cid, target, "--connections", "5")
        assert result.returncode == 0, result.stderr
        assert f"piece CID verified (piece size {piece.piece_size})" in result.stdout
        assert target.read_bytes() == piece.path.read_bytes()
        assert not target.with_name(target.name + ".part").exists()
    out = tmp_path / "tree"
    result = cli("extract", "--root", served.tree.root_cid, "-o", str(out), str(fetched))
    assert result.returncode == 0, result.stderr
    source = served.tree.source
    assert tree_files(out) == tree_files(source)  # every path and every byte, empty files too
    # Empty folders are not part of a UnixFS DAG (a directory without content has no CID), so
    # they cannot come back; every folder that holds a file does.
    assert tree_folders(out) == folders_with_files(source)
    for empty in EMPTY_FOLDERS:
        assert (source / empty).is_dir() and not (out / empty).exists()
    files = len(tree_files(source))
    assert result.stdout.startswith(f"{out}: {files} files (")


def test_a_piece_fetched_by_its_v2_cid_has_its_length_bound(served: Served, tmp_path: Path) -> None:
    for piece in (served.tree.piece("dag"), served.tree.piece()):  # padded, and a data piece
        v2 = piece_cid_v2(piece.cid, piece.file_size, piece.piece_size)
        target = tmp_path / f"{v2}.car"
        result = fetch(served.provider.url, v2, target, "--connections", "3")
        assert result.returncode == 0, result.stderr
        assert (
            f"piece CID verified (piece size {piece.piece_size}), length bound by the v2 CID,"
            in result.stdout
        )
        assert target.read_bytes() == piece.path.read_bytes()
        by_v1 = fetch(served.provider.url, piece.cid, tmp_path / "v1.car")
        assert by_v1.returncode == 0, by_v1.stderr
        assert "length as the provider records it" in by_v1.stdout
    # A v2 CID that binds one byte less than the piece file: not this piece (the provider says
    # so; a provider that served it anyway is refused by the client, test_fetch_piece_length.py).
    dag = served.tree.piece("dag")
    shorter = piece_cid_v2(dag.cid, dag.file_size - 1, dag.piece_size)
    refused = fetch(served.provider.url, shorter, tmp_path / "short.car")
    assert refused.returncode == 1
    assert "404 no piece with this CID is known here" in refused.stderr
    assert not (tmp_path / "short.car").exists()


def test_a_piece_that_does_not_match_its_cid_is_kept_as_bad(served: Served, tmp_path: Path) -> None:
    piece = served.tree.piece()
    original = piece.path.read_bytes()
    flipped = bytearray(original)
    flipped[200] ^= 0xFF  # same size: the provider serves it, only the piece CID can tell
    piece.path.write_bytes(bytes(flipped))
    target = tmp_path / "piece.car"
    try:
        result = fetch(served.provider.url, piece.cid, target)
    finally:
        piece.path.write_bytes(original)
    assert result.returncode == 1
    assert not target.exists()
    bad = tmp_path / "piece.car.bad"
    assert bad.read_bytes() == bytes(flipped)
    assert re.fullmatch(
        rf"error: the downloaded bytes have piece CID baga\w+ \(piece size {piece.piece_size}\), "
        rf"not {piece.cid}: kept as {re.escape(str(bad))} for inspection\n",
        result.stderr,
    ), result.stderr


def test_an_unknown_or_invalid_piece_fails_with_the_reason(served: Served, tmp_path: Path) -> None:
    target = tmp_path / "x.car"
    unknown = fetch(served.provider.url, UNKNOWN_PIECE, target)
    assert unknown.returncode == 1
    assert unknown.stderr == (
        f"error: HEAD {served.provider.url}/piece/{UNKNOWN_PIECE}: 404 no piece with this CID "
        "is known here\n"
    )
    invalid = fetch(
        served.provider.url, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", target
    )
    assert invalid.returncode == 1
    assert (
        invalid.stderr.startswith("error: PIECE_CID: ") and "is not a piece CID" in invalid.stderr
    )
    assert not list(tmp_path.iterdir())


@dataclass
class CuttingProxy:
    """A TCP proxy to the provider that cuts client connections on purpose.

    `cut_after`: the first connection to carry more than this many reply bytes is cut there
    (once), with a TCP reset when `reset`, else closed after the bytes before the cut.
    `fail_ranges`: every connection is reset as soon as it sends a ranged GET.
    """

    target: int
    cut_after: int | None = None
    reset: bool = True
    fail_ranges: bool = False
    connections: int = 0
    cuts: int = 0
    ranges: list[str] = field(default_factory=list)
    _server: socket.socket = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                found = re.findall(rb"(?i)range: bytes=([0-9-]+)", data)
                with self._lock:
                    self.ranges += [value.decode() for value in found]
                if self.fail_ranges and found:
                    reset(client)
                    upstream.close()
                    return
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()

    def _replies(self, upstream: socket.socket, client: socket.socket) -> None:
        sent = 0
        try:
            while data := upstream.recv(65536):
                with self._lock:
                    cut = self.cut_after is not None and self.cuts == 0
                    cut = cut and sent + len(data) > (self.cut_after or 0)
                    if cut:
                        self.cuts += 1
                if cut:
                    client.sendall(data[: (self.cut_after or 0) - sent])
                    if self.reset:
                        reset(client)
                    return
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            upstream.close()
            hang_up(client)


def hang_up(sock: socket.socket) -> None:
    """Close normally (FIN), waking a thread blocked reading the socket (see `reset`)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0): the peer sees 'connection reset'.

    The read side is shut down first: it wakes the thread blocked reading this socket, whose
    pending call would otherwise keep the socket (and the reset) alive.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.shutdown(socket.SHUT_RD)
        sock.close()
    except OSError:
        pass


@pytest.mark.parametrize("how", ["reset", "close"])
def test_fetch_survives_a_connection_cut_mid_body(served: Served, tmp_path: Path, how: str) -> None:
    piece = served.tree.piece()
    proxy = CuttingProxy(served.provider.port, cut_after=100_000, reset=how == "reset")
    target = tmp_path / "piece.car"
    try:
        result = fetch(proxy.url, piece.cid, target, "--connections", "5")
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    assert proxy.cuts == 1
    assert "1 retried transfers" in result.stdout
    assert target.read_bytes() == piece.path.read_bytes()
    assert proxy.connections >= 2
    chunks = -(-piece.file_size // (64 << 10))  # 64 KiB chunks for a piece of about 1 MB
    assert len(proxy.ranges) == chunks + 1  # one range asked for again
    if how == "close":
        # Every byte before the cut arrived, so the retry asks only for the rest: a range that
        # starts inside a 64 KiB chunk. (A reset may discard bytes still in the receive queue.)
        starts = [int(value.split("-")[0]) for value in proxy.ranges]
        assert any(start % (64 << 10) for start in starts), proxy.ranges


def test_fetch_gives_up_after_bounded_attempts(served: Served, tmp_path: Path) -> None:
    piece = served.tree.piece()
    proxy = CuttingProxy(served.provider.port, fail_ranges=True)
    target = tmp_path / "piece.car"
    try:
        result = fetch(proxy.url, piece.cid, target, "--connections", "1")
    finally:
        proxy.close()
    assert result.returncode == 1
    assert re.match(
        r"error: bytes 0-\d+: giving up after 6 attempts without progress", result.stderr
    )
    assert len(proxy.ranges) == 6
    assert not os.listdir(tmp_path)  # no FILE, no FILE.part left behind


def test_a_piece_hashed_in_many_segments_is_verified_and_a_flipped_byte_caught(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segments of 127 KiB (instead of 63.5 MiB) make a piece of about 1 MB hash in several
    segments on two threads, joined into one piece CID: right bytes pass, one wrong byte in a
    later segment does not."""
    from dataset_worker.content.commptree import segment_count
    from dataset_worker.provider import client

    segment = 127 << 10
    monkeypatch.setattr(client, "SEGMENT", segment)
    piece = served.tree.piece()
    assert segment_count(piece.file_size, segment) >= 4
    target = tmp_path / "piece.car"
    result = client.fetch_piece(served.provider.url, piece.cid, target, connections=3)
    assert (result.size, result.piece_size) == (piece.file_size, piece.piece_size)
    assert target.read_bytes() == piece.path.read_bytes()

    original = piece.path.read_bytes()
    flipped = bytearray(original)
    flipped[3 * segment + 5] ^= 0x01  # inside the fourth segment
    piece.path.write_bytes(bytes(flipped))
    again = tmp_path / "again.car"
    try:
        with pytest.raises(client.FetchError, match="the downloaded bytes have piece CID"):
            client.fetch_piece(served.provider.url, piece.cid, again, connections=3)
    finally:
        piece.path.write_bytes(original)
    assert again.with_name("again.car.bad").read_bytes() == bytes(flipped)
    assert not again.exists()
