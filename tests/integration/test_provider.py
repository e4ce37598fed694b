"""The content provider over HTTP: a real `dataset-worker content-provider` process serving the
pieces of a tree prepared by the real job bodies, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import commp_of, finalize
from dataset_worker.content.piececid2 import piece_cid_v2
from dataset_worker.provider.ranges import http_date
from tests.integration.provider_support import (
    Piece,
    PreparedTree,
    Provider,
    fresh_database_url,
    prepare_tree,
    provider_command,
    running_provider,
    start_provider,
)

CAR_TYPE = "application/vnd.ipld.car; version=1"
UNKNOWN_PIECE = "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy"  # 1 KiB zeros
RAW_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@dataclass(frozen=True)
class Served:
    """A prepared tree, the database it is recorded in, and a provider serving it."""

    tree: PreparedTree
    database_url: str
    provider: Provider
    folder: Path

    def url(self, piece: Piece | str) -> str:
        cid = piece if isinstance(piece, str) else piece.cid
        return f"{self.provider.url}/piece/{cid}"


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("sqlite", "--no-sendfile"), id="sqlite-read"),
        pytest.param(("sqlite", "--sendfile"), id="sqlite-sendfile"),
        pytest.param(("postgres", "--no-sendfile"), id="postgres", marks=pytest.mark.postgres),
    ],
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """Both ways of sending bytes, and both databases (the database only serves lookups)."""
    database, send_mode = request.param
    folder = tmp_path_factory.mktemp("provider")
    url = fresh_database_url(database, request, folder)
    tree = prepare_tree(url, folder)
    for provider in running_provider(url, folder, send_mode):
        yield Served(tree, url, provider, folder)


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as http:
        yield http


def expected_headers(piece: Piece) -> dict[str, str]:
    return {
        "accept-ranges": "bytes",
        "etag": f'"{piece.cid}"',
        "content-type": CAR_TYPE,
        "content-disposition": f'attachment; filename="{piece.cid}.car"',
        "last-modified": http_date(piece.created_at),
    }


def piece_cid_of(data: bytes, piece_size: int) -> str:
    commitment, _ = finalize(commp_of(data), piece_size)
    return cid_to_str(piece_cid(commitment))


def test_the_tree_spans_several_pieces(served: Served) -> None:
    kinds = [piece.piece_type for piece in served.tree.pieces]
    assert kinds.count("dag") == 1
    assert kinds.count("data") >= 3  # big.bin alone needs three 1 MB pieces


def test_head_gives_the_headers_and_no_body(served: Served, client: httpx.Client) -> None:
    for piece in served.tree.pieces:
        reply = client.head(served.url(piece))
        assert reply.status_code == 200
        assert reply.content == b""
        assert int(reply.headers["content-length"]) == piece.file_size == piece.path.stat().st_size
        for name, value in expected_headers(piece).items():
            assert reply.headers[name] == value, name


def test_get_sends_the_whole_car_file_padding_included(
    served: Served, client: httpx.Client
) -> None:
    for piece in served.tree.pieces:
        reply = client.get(served.url(piece))
        assert reply.status_code == 200
        for name, value in expected_headers(piece).items():
            assert reply.headers[name] == value, name
        assert reply.content == piece.path.read_bytes()
        assert piece_cid_of(reply.content, piece.piece_size) == piece.cid
    dag = served.tree.piece("dag")
    assert dag.file_size == dag.piece_size * 127 // 128  # min-piece padding is in the file


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=100-1099", 100, 1099),
        ("bytes=-500", -500, None),
        ("bytes=1000-", 1000, None),
        ("bytes=5-2000000000", 5, None),
        ("BYTES=7-9", 7, 9),  # range units compare case-insensitively
    ],
)
def test_a_single_range_is_206_with_content_range(
    served: Served, client: httpx.Client, header: str, start: int, end: int | None
) -> None:
    piece = served.tree.piece()
    data = piece.path.read_bytes()
    size = len(data)
    first = start if start >= 0 else size + start
    last = end if end is not None else size - 1
    reply = client.get(served.url(piece), headers={"Range": header})
    assert reply.status_code == 206
    assert reply.headers["content-range"] == f"bytes {first}-{last}/{size}"
    assert reply.headers["content-type"] == CAR_TYPE
    assert int(reply.headers["content-length"]) == last - first + 1
    assert reply.content == data[first : last + 1]


@pytest.mark.parametrize(
    "header",
    ["bytes=9-7", "bytes=abc", "items=0-5", "bytes=", "bytes=1-2,x", "bytes=" + "0-0," * 65],
    ids=["backwards", "letters", "other-unit", "empty", "one-bad", "65-ranges"],
)
def test_an_invalid_range_header_is_ignored(
    served: Served, client: httpx.Client, header: str
) -> None:
    piece = served.tree.piece()
    reply = client.get(served.url(piece), headers={"Range": header})
    assert reply.status_code == 200
    assert reply.content == piece.path.read_bytes()


def parse_multipart(reply: httpx.Response) -> list[tuple[str, str, bytes]]:
    """(content-type, content-range, bytes) of each part of a multipart/byteranges body."""
    media, _, param = reply.headers["content-type"].partition("; boundary=")
    assert media == "multipart/byteranges"
    delimiter = b"--" + param.encode()
    body = reply.content
    assert body.startswith(delimiter + b"\r\n")
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n")
    parts = []
    for chunk in body[: -len(delimiter) - 6].split(b"\r\n" + delimiter + b"\r\n"):
        chunk = chunk.removeprefix(delimiter + b"\r\n")
        head, _, data = chunk.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n"))
        parts.append((fields[b"Content-Type"].decode(), fields[b"Content-Range"].decode(), data))
    return parts


def test_several_ranges_are_multipart_byteranges(served: Served, client: httpx.Client) -> None:
    piece = served.tree.piece()
    data = piece.path.read_bytes()
    size = len(data)
    reply = client.get(
        served.url(piece), headers={"Range": "bytes=0-9, 500000-500099,-7, 99999999-"}
    )
    assert reply.status_code == 206
    assert int(reply.headers["content-length"]) == len(reply.content)
    parts = parse_multipart(reply)  # the unsatisfiable last range is dropped
    assert parts == [
        (CAR_TYPE, f"bytes 0-9/{size}", data[:10]),
        (CAR_TYPE, f"bytes 500000-500099/{size}", data[500000:500100]),
        (CAR_TYPE, f"bytes {size - 7}-{size - 1}/{size}", data[-7:]),
    ]


def test_a_range_past_the_end_is_416_with_the_size(served: Served, client: httpx.Client) -> None:
    piece = served.tree.piece()
    for header in (
        f"bytes={piece.file_size}-",
        f"bytes={piece.file_size + 5}-{piece.file_size + 9}",
        "bytes=-0",
    ):
        reply = client.get(served.url(piece), headers={"Range": header})
        assert reply.status_code == 416, header
        assert reply.headers["content-range"] == f"bytes */{piece.file_size}"
        assert "Range not satisfiable" in reply.json()["error"]


def test_an_id_that_is_not_a_piece_cid_is_400(served: Served, client: httpx.Client) -> None:
    for text, why in (
        (RAW_CID, "codec raw"),
        ("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn", 'must start with "b"'),
        ("baga6ea4seaq!!", "not a base32 CIDv1"),
        ("hello", 'must start with "b"'),
    ):
        for method in ("GET", "HEAD"):
            reply = client.request(method, served.url(text))
            assert reply.status_code == 400, (text, method)
        message = client.get(served.url(text)).json()["error"]
        assert "is not a piece CID" in message and why in message, message
        assert "fil-commitment-unsealed" in message


def test_an_unknown_piece_is_404(served: Served, client: httpx.Client) -> None:
    assert client.head(served.url(UNKNOWN_PIECE)).status_code == 404
    reply = client.get(served.url(UNKNOWN_PIECE))
    assert reply.status_code == 404
    assert reply.json()["error"] == "no piece with this CID is known here"


def v2_of(piece: Piece, payload_size: int | None = None) -> str:
    """The FRC-0069 v2 CID of a piece: its payload is the CAR file, padding zeros included."""
    size = piece.file_size if payload_size is None else payload_size
    return piece_cid_v2(piece.cid, size, piece.piece_size)


def test_v1_and_v2_cids_give_identical_bytes_and_headers(
    served: Served, client: httpx.Client
) -> None:
    for piece in served.tree.pieces:
        v2 = v2_of(piece)
        for method in ("HEAD", "GET"):
            # The v2 request first, then v1, then v2 again (answered from the cached rows).
            replies = [client.request(method, served.url(cid)) for cid in (v2, piece.cid, v2)]
            for reply in replies:
                assert reply.status_code == 200, reply.text
                headers = {k: v for k, v in reply.headers.items() if k != "date"}
                assert headers == {k: v for k, v in replies[1].headers.items() if k != "date"}
                assert reply.content == replies[1].content
        ranged = client.get(served.url(v2), headers={"Range": "bytes=10-99"})
        assert ranged.status_code == 206 and ranged.content == piece.path.read_bytes()[10:100]
        assert ranged.headers["etag"] == f'"{piece.cid}"'
        meta_v1 = client.get(f"{served.provider.url}/piece/metadata/{piece.cid}").json()
        meta_v2 = client.get(f"{served.provider.url}/piece/metadata/{v2}").json()
        assert meta_v2 == meta_v1 and meta_v1["pieceCidV2"] == v2


def test_a_v2_cid_naming_another_payload_size_is_404(served: Served, client: httpx.Client) -> None:
    # The same commitment with a payload one byte shorter or longer (trailing zeros removed or
    # added) is another v2 piece: not the one stored here.
    shorter = served.tree.piece("dag")  # padded to the full piece: only shorter is possible
    assert shorter.file_size == shorter.piece_size * 127 // 128
    longer = min(served.tree.pieces, key=lambda p: p.file_size / p.piece_size)
    assert longer.file_size < longer.piece_size * 127 // 128
    for piece, size in ((shorter, shorter.file_size - 1), (longer, longer.file_size + 1)):
        other = v2_of(piece, size)
        assert client.head(served.url(other)).status_code == 404
        reply = client.get(served.url(other))
        assert reply.status_code == 404
        assert reply.json()["error"] == "no piece with this CID is known here"
        assert client.get(f"{served.provider.url}/piece/metadata/{other}").status_code == 404


def test_a_broken_v2_cid_is_400(served: Served, client: httpx.Client) -> None:
    # A v2 prefix whose 3-byte digest holds padding and height but no 32-byte root.
    broken = cid_to_str(bytes((0x01, 0x55, 0x91, 0x20, 0x03, 0x00, 0x05, 0x00)))
    for method in ("GET", "HEAD"):
        assert client.request(method, served.url(broken)).status_code == 400
    message = client.get(served.url(broken)).json()["error"]
    assert "does not hold padding, height and a 32-byte root" in message


def test_if_none_match_and_if_modified_since_give_304(served: Served, client: httpx.Client) -> None:
    piece = served.tree.piece()
    etag = f'"{piece.cid}"'
    for header in (etag, f'"other", {etag}', "*", f"W/{etag}"):
        reply = client.get(served.url(piece), headers={"If-None-Match": header})
        assert reply.status_code == 304, header
        assert reply.content == b""
        assert reply.headers["etag"] == etag
    changed = client.get(served.url(piece), headers={"If-None-Match": f'"{UNKNOWN_PIECE}"'})
    assert changed.status_code == 200
    assert changed.content == piece.path.read_bytes()
    since = http_date(piece.created_at)
    assert client.get(served.url(piece), headers={"If-Modified-Since": since}).status_code == 304
    older = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.head(served.url(piece), headers={"If-Modified-Since": older}).status_code == 200


def test_if_range_keeps_the_range_only_while_it_matches(
    served: Served, client: httpx.Client
) -> None:
    piece = served.tree.piece()
    data = piece.path.read_bytes()
    etag = f'"{piece.cid}"'
    cases = {
        etag: 206,
        http_date(piece.created_at): 206,
        f'"{UNKNOWN_PIECE}"': 200,
        f"W/{etag}": 200,  # If-Range needs a strong match
        "Mon, 01 Jan 2001 00:00:00 GMT": 200,
        "not a validator": 200,
    }
    for if_range, status in cases.items():
        reply = client.get(
            served.url(piece), headers={"Range": "bytes=10-19", "If-Range": if_range}
        )
        assert reply.status_code == status, if_range
        assert reply.content == (data[10:20] if status == 206 else data)


def test_a_boost_like_client_reassembles_the_piece_from_five_ranges(
    served: Served, client: httpx.Client
) -> None:
    piece = served.tree.piece()
    head = client.head(served.url(piece))
    size = int(head.headers["content-length"])
    assert head.headers["accept-ranges"] == "bytes"
    bounds = [(i * size // 5, (i + 1) * size // 5 - 1) for i in range(5)]
    parts: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def fetch(index: int, first: int, last: int) -> None:
        try:
            with httpx.Client(timeout=60) as own:
                reply = own.get(
                    served.url(piece),
                    headers={"Range": f"bytes={first}-{last}", "If-Range": head.headers["etag"]},
                )
            assert reply.status_code == 206
            assert reply.headers["content-range"] == f"bytes {first}-{last}/{size}"
            parts[index] = reply.content
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(i, *b)) for i, b in enumerate(bounds)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    data = b"".join(parts[i] for i in range(5))
    assert len(data) == size
    assert piece_cid_of(data, piece.piece_size) == piece.cid


def raw_request(sock: socket.socket, target: str, extra: str = "") -> tuple[bytes, bytes]:
    """Send one GET on an open connection and read its reply (headers, body)."""
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode())
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the headers"
        buffer += chunk
    head, _, body = buffer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed inside the body"
        body += chunk
    assert len(body) == length
    return head, body


def test_one_connection_serves_request_after_request(served: Served) -> None:
    """Sending a reply (sendfile or reads) leaves the keep-alive connection usable."""
    piece = served.tree.piece()
    data = piece.path.read_bytes()
    with socket.create_connection(("127.0.0.1", served.provider.port), timeout=30) as sock:
        head, body = raw_request(sock, f"/piece/{piece.cid}")
        assert head.startswith(b"HTTP/1.1 200") and body == data
        head, body = raw_request(sock, f"/piece/{piece.cid}", "Range: bytes=3-5, 8-9\r\n")
        assert head.startswith(b"HTTP/1.1 206") and data[3:6] in body and data[8:10] in body
        head, body = raw_request(sock, f"/piece/{piece.cid}", "Range: bytes=-4\r\n")
        assert head.startswith(b"HTTP/1.1 206") and body == data[-4:]


def test_a_client_leaving_mid_body_does_not_hurt_the_server(
    served: Served, client: httpx.Client
) -> None:
    piece = served.tree.piece()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", served.provider.port), timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(f"GET /piece/{piece.cid} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    assert client.get(served.url(piece)).content == piece.path.read_bytes()
    assert "Traceback" not in served.provider.log()


def test_piece_metadata_lists_the_row_blocks_and_ranges(
    served: Served, client: httpx.Client
) -> None:
    data_pieces = [p for p in served.tree.pieces if p.piece_type == "data"]
    seen: list[tuple[str, int, int]] = []
    for piece in data_pieces:
        cursor, pages = None, 0
        while True:
            params: dict[str, int] = {"limit": 1} | (
                {"cursor": cursor} if cursor is not None else {}
            )
            reply = client.get(f"{served.provider.url}/piece/metadata/{piece.cid}", params=params)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            pages += 1
            assert body["pieceCid"] == piece.cid
            assert body["pieceSize"] == piece.piece_size
            assert body["fileSize"] == piece.file_size
            assert body["storagePath"] == piece.path.name
            assert body["available"] is True and body["problem"] is None
            assert body["blockCount"] >= 1
            assert len(body["ranges"]) <= 1
            seen += [(r["path"], r["offset"], r["length"]) for r in body["ranges"]]
            cursor = body["nextCursor"]
            if cursor is None:
                break
        assert pages >= 1
    big = sorted((offset, length) for path, offset, length in seen if path == "big.bin")
    assert sum(length for _, length in big) == 2_600_000
    assert big[0][0] == 0 and all(a + b == c for (a, b), (c, _) in itertools.pairwise(big))
    dag = served.tree.piece("dag")
    body = client.get(f"{served.provider.url}/piece/metadata/{dag.cid}").json()
    assert body["pieceType"] == "dag" and body["ranges"] == [] and body["nextCursor"] is None
    assert body["rootCid"] == served.tree.root_cid


def test_piece_metadata_block_count_matches_the_car(served: Served, client: httpx.Client) -> None:
    from dataset_worker.content.car import CarReader

    for piece in served.tree.pieces:
        with piece.path.open("rb") as stream:
            blocks = sum(1 for _ in CarReader(stream))
        body = client.get(f"{served.provider.url}/piece/metadata/{piece.cid}").json()
        assert body["blockCount"] == blocks


def test_piece_metadata_errors(served: Served, client: httpx.Client) -> None:
    base = f"{served.provider.url}/piece/metadata"
    assert client.get(f"{base}/{UNKNOWN_PIECE}").status_code == 404
    reply = client.get(f"{base}/{RAW_CID}")
    assert reply.status_code == 400 and "is not a piece CID" in reply.json()["error"]
    piece = served.tree.piece()
    reply = client.get(f"{base}/{piece.cid}", params={"limit": 0})
    assert reply.status_code == 400
    assert reply.json()["error"] == "query parameter limit must be at least 1"


def test_a_missing_or_changed_car_file_is_refused_before_any_byte(
    served: Served, client: httpx.Client
) -> None:
    piece = served.tree.piece()
    original = piece.path.read_bytes()
    backup = served.folder / "backup.car"
    shutil.copyfile(piece.path, backup)
    try:
        piece.path.unlink()
        for method in ("GET", "HEAD"):
            reply = client.request(method, served.url(piece), headers={"Range": "bytes=0-9"})
            assert reply.status_code == 410, method
            assert reply.headers["content-type"] == "application/json"
        gone = client.get(served.url(piece)).json()
        assert gone["error"] == f"the CAR file {piece.path} no longer exists"
        assert gone["detail"] == {"file": str(piece.path)}
        meta = client.get(f"{served.provider.url}/piece/metadata/{piece.cid}").json()
        assert meta["available"] is False and str(piece.path) in meta["problem"]

        piece.path.write_bytes(original[:-1])  # truncated by one byte
        reply = client.get(served.url(piece))
        assert reply.status_code == 409
        assert reply.json()["error"] == (
            f"the CAR file {piece.path} is {len(original) - 1} bytes but the database records "
            f"{len(original)}: it was truncated or replaced, so it is not served"
        )
        assert client.head(served.url(piece)).status_code == 409
    finally:
        os.replace(backup, piece.path)
    assert client.get(served.url(piece)).content == original


def test_a_token_file_makes_requests_need_the_token(served: Served, client: httpx.Client) -> None:
    token_file = served.folder / "token"
    token_file.write_text("s3cret-token\n")
    piece = served.tree.piece()
    provider = start_provider(served.database_url, served.folder, "--token-file", str(token_file))
    try:
        url = f"{provider.url}/piece/{piece.cid}"
        missing = client.get(url)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer <token>" in missing.json()["error"]
        assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        good = client.get(url, headers={"Authorization": "Bearer s3cret-token"})
        assert good.status_code == 200 and good.content == piece.path.read_bytes()
        assert client.get(f"{provider.url}/healthz").status_code == 200
        assert client.get(f"{provider.url}/openapi.json").status_code == 200
    finally:
        provider.stop()


def run_provider_cli(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATASET_WORKER_DATABASE_URL": served.database_url}
    return subprocess.run(
        provider_command(*args), env=env, capture_output=True, text=True, timeout=60
    )


def test_a_reachable_address_needs_a_token_or_public(served: Served) -> None:
    result = run_provider_cli(served, "--host", "0.0.0.0", "--port", "9")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: refusing to serve pieces on 0.0.0.0, which other machines can reach, without a "
        "token: pass --token-file FILE (clients then send Authorization: Bearer <token>), or "
        "--public to serve them to anyone"
    )
    missing = run_provider_cli(served, "--token-file", str(served.folder / "absent"))
    assert missing.returncode == 1
    assert "--token-file" in missing.stderr and "no such file" in missing.stderr


def test_a_database_without_the_schema_is_refused_clearly(tmp_path: Path) -> None:
    env = {**os.environ, "DATASET_WORKER_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = subprocess.run(
        provider_command("--port", "9"), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot read pieces from the database: no such table")
