"""The content provider serving inline pieces: a real `dataset-worker content-provider` process
rebuilds each piece from `car_blocks` and the source files; the bytes are those of the CAR file a
preparation with an output writes (SQLite and PostgreSQL). A changed source file is a 409 before
any byte; one rewritten in place behind the scan's back aborts the transfer."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import commp_of, finalize
from tests.integration.inline_support import Twin, Twins, prepare_twins, rewrite_in_place
from tests.integration.provider_support import Provider, fresh_database_url, running_provider

CHANGED_FILE = "dir1/nested/deep/file.dat"


@dataclass(frozen=True)
class Served:
    """The inline rows (the written twins' rows dropped) and a provider serving them."""

    twins: Twins
    provider: Provider

    def url(self, twin: Twin) -> str:
        return f"{self.provider.url}/piece/{twin.cid}"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("provider-inline")
    url = fresh_database_url(request.param, request, folder)
    twins = prepare_twins(url, folder, drop_written=True)
    for provider in running_provider(url, folder):
        yield Served(twins, provider)


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as http:
        yield http


def piece_cid_of(data: bytes, piece_size: int) -> str:
    commitment, _ = finalize(commp_of(data), piece_size)
    return cid_to_str(piece_cid(commitment))


def test_every_inline_piece_is_served_as_the_written_car_file(
    served: Served, client: httpx.Client
) -> None:
    assert {t.piece_type for t in served.twins.twins if t.padded} == {"data", "dag"}
    for twin in served.twins.twins:
        expected = twin.car_file.read_bytes()
        for _ in range(2):  # the second time the rows are cached: still checked, not fast-pathed
            reply = client.get(served.url(twin))
            assert reply.status_code == 200, reply.text
            assert reply.headers["content-length"] == str(len(expected))
            assert reply.headers["etag"] == f'"{twin.cid}"'
            assert reply.content == expected
        assert piece_cid_of(reply.content, twin.piece_size) == twin.cid
        head = client.head(served.url(twin))
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(expected))


def test_ranges_of_an_inline_piece_match_the_file(served: Served, client: httpx.Client) -> None:
    twin = max(served.twins.twins, key=lambda t: t.file_size)
    expected = twin.car_file.read_bytes()
    size = len(expected)
    for first, last in [(0, 0), (0, 58), (59, 100_000), (size - 10, size - 1), (300_001, 700_000)]:
        reply = client.get(served.url(twin), headers={"Range": f"bytes={first}-{last}"})
        assert reply.status_code == 206
        assert reply.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert reply.content == expected[first : last + 1]
    suffix = client.get(served.url(twin), headers={"Range": "bytes=-1000"})
    assert suffix.status_code == 206 and suffix.content == expected[-1000:]
    multi = client.get(served.url(twin), headers={"Range": "bytes=0-9,500000-500099"})
    assert multi.status_code == 206
    assert multi.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert expected[:10] in multi.content and expected[500000:500100] in multi.content
    # A piece reassembled from ranges fetched out of order is the piece.
    cuts = [0, 123_457, 400_000, 650_001, size]
    parts = {}
    for start, end in reversed(list(itertools.pairwise(cuts))):
        reply = client.get(served.url(twin), headers={"Range": f"bytes={start}-{end - 1}"})
        parts[start] = reply.content
    assert b"".join(parts[start] for start in cuts[:-1]) == expected


def test_a_changed_source_file_is_409_before_any_byte(served: Served, client: httpx.Client) -> None:
    twin = served.twins.with_file(CHANGED_FILE)
    path = served.twins.source / CHANGED_FILE
    original, scanned = path.read_bytes(), path.stat().st_mtime_ns
    try:
        path.write_bytes(original + b"more")
        for method in ("GET", "HEAD"):
            reply = client.request(method, served.url(twin))
            assert reply.status_code == 409, method
            assert reply.headers["content-type"] == "application/json"
        body = client.get(served.url(twin)).json()
        assert body["detail"] == {"file": CHANGED_FILE}
        assert body["error"].startswith(
            f"source file {CHANGED_FILE} has changed since it was scanned (size 5000 -> 5004"
        )
        # A range that needs none of the file's bytes is still served.
        header = client.get(served.url(twin), headers={"Range": "bytes=0-58"})
        assert header.status_code == 206 and header.content == twin.car_file.read_bytes()[:59]
        path.unlink()
        gone = client.get(served.url(twin))
        assert gone.status_code == 409 and "no longer exists" in gone.json()["error"]
    finally:
        path.write_bytes(original)
        rewrite_in_place(path, original, scanned)
    assert client.get(served.url(twin)).content == twin.car_file.read_bytes()


def test_a_file_rewritten_in_place_aborts_the_transfer(
    served: Served, client: httpx.Client, tmp_path: Path
) -> None:
    twin = served.twins.with_file(CHANGED_FILE)
    path = served.twins.source / CHANGED_FILE
    original, scanned = path.read_bytes(), path.stat().st_mtime_ns
    rewrite_in_place(path, bytes(len(original)), scanned)  # same size, same mtime
    try:
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError):
            with client.stream("GET", served.url(twin)) as reply:
                assert reply.status_code == 200  # the status line was already sent...
                for chunk in reply.iter_raw():
                    received += chunk
        assert len(received) < twin.file_size  # ...then the connection was cut
        assert twin.car_file.read_bytes().startswith(bytes(received))  # no wrong byte before it
        assert "provider.inline_mismatch" in served.provider.log()

        target = tmp_path / "piece.car"
        command = [sys.executable, "-m", "dataset_worker", "fetch-piece", served.provider.url]
        command += [twin.cid, "-o", str(target), "--connections", "2"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 1, result.stdout
        assert not target.exists()
    finally:
        rewrite_in_place(path, original, scanned)
    assert client.get(served.url(twin)).content == twin.car_file.read_bytes()
