"""The content provider against hostile clients: overlapping ranges, numbers and dates that
overflow, on a real `dataset-worker content-provider` process (CAR pieces and inline pieces)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import Directory, Preparation, SourceAttachment
from tests.integration.inline_support import Twins, prepare_twins, rewrite_in_place
from tests.integration.provider_support import (
    PreparedTree,
    Provider,
    fresh_database_url,
    prepare_tree,
    running_provider,
)


@dataclass(frozen=True)
class Served:
    tree: PreparedTree
    provider: Provider
    database_url: str
    folder: Path


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("provider-hardening")
    url = fresh_database_url("sqlite", request, folder)
    tree = prepare_tree(url, folder)
    for provider in running_provider(url, folder):
        yield Served(tree, provider, url, folder)


@dataclass(frozen=True)
class Inline:
    twins: Twins
    provider: Provider
    root: str  # the inline preparation's root directory CID


@pytest.fixture(scope="module")
def inline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Inline]:
    folder = tmp_path_factory.mktemp("provider-hardening-inline")
    url = fresh_database_url("sqlite", request, folder)
    twins = prepare_twins(url, folder, drop_written=True)
    db = Database(url)
    try:
        with db.read() as session:
            root = session.scalar(
                select(Directory.cid)
                .join(SourceAttachment, SourceAttachment.id == Directory.attachment_id)
                .join(Preparation, Preparation.id == SourceAttachment.preparation_id)
                .where(Preparation.name == "inline", Directory.parent_id.is_(None))
            )
    finally:
        db.dispose()
    assert root is not None
    for provider in running_provider(url, folder):
        yield Inline(twins, provider, cid_to_str(root))


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as http:
        yield http


OVERLAPPING = "bytes=" + ",".join(["0-"] * 64)


def test_overlapping_ranges_never_send_a_byte_twice(served: Served, client: httpx.Client) -> None:
    piece = served.tree.piece()
    url = f"{served.provider.url}/piece/{piece.cid}"
    for method in ("GET", "HEAD"):
        reply = client.request(method, url, headers={"Range": OVERLAPPING})
        assert reply.status_code in (200, 206), reply.text
        assert int(reply.headers["content-length"]) == piece.file_size  # not 64 times
        assert not reply.headers["content-type"].startswith("multipart/")
    # Overlapping and adjacent ranges are merged into one; disjoint ones stay parts, in order.
    merged = client.get(url, headers={"Range": "bytes=10-19,0-9,5-14"})
    assert merged.status_code == 206
    assert merged.headers["content-range"] == f"bytes 0-19/{piece.file_size}"
    assert merged.content == piece.path.read_bytes()[:20]
    # Small overlapping slices whose total exceeds the piece: the whole piece, once.
    many = ",".join(f"0-{piece.file_size // 2}" for _ in range(3))
    reply = client.head(url, headers={"Range": f"bytes={many}"})
    assert int(reply.headers["content-length"]) <= piece.file_size


def test_overlapping_ranges_on_an_inline_piece_check_once(
    inline: Inline, client: httpx.Client
) -> None:
    twins, provider = inline.twins, inline.provider
    twin = max(twins.twins, key=lambda t: t.file_size)
    reply = client.head(f"{provider.url}/piece/{twin.cid}", headers={"Range": OVERLAPPING})
    assert reply.status_code in (200, 206)
    assert int(reply.headers["content-length"]) == twin.file_size


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("bytes=" + "9" * 5000 + "-", 416),  # past the end: int() of it was a 500
        ("bytes=-" + "9" * 5000, 206),  # a suffix longer than the piece: all of it
        ("bytes=0-" + "9" * 5000, 206),
        ("bytes=" + "0" * 5000 + "1-2", 206),  # leading zeros do not make a number large
    ],
)
def test_range_numbers_of_thousands_of_digits(
    served: Served, client: httpx.Client, header: str, status: int
) -> None:
    piece = served.tree.piece()
    reply = client.get(f"{served.provider.url}/piece/{piece.cid}", headers={"Range": header})
    assert reply.status_code == status, reply.text
    if status == 416:
        assert len(reply.json()["error"]) < 300  # the header is not echoed back whole


BAD_DATES = [
    "Mon, 01 Jan 99999 00:00:00 GMT",  # a year past 9999
    "Fri, 31 Dec 9999 23:59:59 -2359",  # in range here, past 9999 in UTC
    "Sat, 01 Jan 0001 00:00:00 +2359",  # before year 1 in UTC
    "Mon, 01 Jan 2024 00:00:00 +9999",  # an offset of more than a day
    "Mon, 01 Jan 2024 99:99:99 GMT",
]


@pytest.mark.parametrize("date", BAD_DATES)
def test_conditional_dates_out_of_range_are_ignored(
    served: Served, client: httpx.Client, date: str
) -> None:
    piece = served.tree.piece()
    url = f"{served.provider.url}/piece/{piece.cid}"
    since = client.get(url, headers={"If-Modified-Since": date, "Range": "bytes=0-9"})
    assert since.status_code == 206, since.text  # an invalid date is ignored (RFC 9110 13.1.3)
    if_range = client.get(url, headers={"If-Range": date, "Range": "bytes=0-9"})
    assert if_range.status_code == 200, if_range.text  # no match: the whole piece
    assert len(if_range.content) == piece.file_size


def test_the_gateway_refuses_a_changed_source_before_the_first_byte(
    inline: Inline, client: httpx.Client
) -> None:
    path = inline.twins.source / "big.bin"
    original, scanned = path.read_bytes(), path.stat().st_mtime_ns
    url = f"{inline.provider.url}/ipfs/{inline.root}/big.bin"
    changed = bytearray(original)
    changed[1_500_000:1_500_010] = b"0123456789"  # in a later leaf: the first one still matches
    path.write_bytes(bytes(changed))  # same size, a new mtime
    try:
        for method in ("GET", "HEAD"):
            reply = client.request(method, url)
            assert reply.status_code == 409, (method, reply.status_code)
        body = client.get(url).json()
        assert body["detail"] == {"file": "big.bin"}  # named in its source, not by server path
        assert "was modified since the scan" in body["error"]
        assert str(inline.twins.source) not in client.get(url).text
    finally:
        rewrite_in_place(path, original, scanned)
    assert client.get(url).content == original


def test_errors_name_the_piece_file_not_server_paths(served: Served, client: httpx.Client) -> None:
    piece = served.tree.piece()
    hidden = piece.path.with_name(piece.path.name + ".away")
    piece.path.rename(hidden)
    try:
        reply = client.get(f"{served.provider.url}/piece/{piece.cid}")
        assert reply.status_code == 410
        assert str(served.tree.output) not in reply.text
        assert piece.path.name in reply.json()["error"]
        meta = client.get(f"{served.provider.url}/piece/metadata/{piece.cid}")
        assert str(served.tree.output) not in meta.json()["problem"]
    finally:
        hidden.rename(piece.path)


def test_verify_blocks_cuts_a_car_edited_in_place(served: Served, client: httpx.Client) -> None:
    piece = served.tree.piece()
    original = piece.path.read_bytes()
    for verifying in running_provider(served.database_url, served.folder, "--verify-blocks"):
        url = f"{verifying.url}/piece/{piece.cid}"
        # Unchanged: every way of reading gives the file's bytes.
        assert client.get(url).content == original
        ranged = client.get(url, headers={"Range": "bytes=100-299999"})
        assert ranged.status_code == 206 and ranged.content == original[100:300000]
        edited = bytearray(original)
        edited[len(original) // 2] ^= 0xFF  # same size: the size check cannot tell
        piece.path.write_bytes(bytes(edited))
        try:
            plain = client.get(f"{served.provider.url}/piece/{piece.cid}")
            assert plain.content == bytes(edited)  # without --verify-blocks: served as it is
            received = bytearray()
            with pytest.raises(httpx.RemoteProtocolError):
                with client.stream("GET", url) as reply:
                    assert reply.status_code == 200  # the status line was sent...
                    for chunk in reply.iter_raw():
                        received += chunk
            assert len(received) < len(original) // 2 + 1  # ...then cut before the bad byte
            assert original.startswith(bytes(received))
            assert "provider.block_mismatch" in verifying.log()
        finally:
            piece.path.write_bytes(original)
