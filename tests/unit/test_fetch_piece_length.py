"""fetch-piece refuses a piece whose length is not the one its CID (v2) or its provider's record
(v1) says, even though trailing zeros leave the commitment unchanged.

A stand-in provider on 127.0.0.1 (http.server) serves chosen bytes and metadata, so the client can
be shown lengths the real content provider never serves (it checks its files' sizes itself).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import commp_of
from dataset_worker.content.piececid2 import piece_cid_v2
from dataset_worker.retrieve.fetch import FetchError, fetch_piece

PAYLOAD = hashlib.shake_256(b"fetch-piece length").digest(3000)  # natural piece 4 KiB
PIECE_SIZE = 4096
V1 = cid_to_str(piece_cid(commp_of(PAYLOAD).commitment))
V2 = piece_cid_v2(V1, len(PAYLOAD), PIECE_SIZE)
PADDED = PAYLOAD + bytes(1000)  # trailing zeros: same commP, same natural piece size


@dataclass
class StandIn:
    """What the stand-in serves: the piece bytes and the metadata's fileSize (None: no
    metadata endpoint)."""

    body: bytes
    file_size: int | None
    url: str = ""


@pytest.fixture
def provider() -> Iterator[StandIn]:
    state = StandIn(PAYLOAD, len(PAYLOAD))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._piece(head=True)

        def do_GET(self) -> None:
            if self.path.startswith("/piece/metadata/"):
                if state.file_size is None:
                    self._send(404, b'{"error": "not found"}', "application/json")
                    return
                body = {"pieceCid": V1, "pieceSize": PIECE_SIZE, "fileSize": state.file_size}
                self._send(200, json.dumps(body).encode(), "application/json")
                return
            self._piece(head=False)

        def _piece(self, *, head: bool) -> None:
            data = state.body
            wanted = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            if wanted is None:
                self._send(200, data, "application/octet-stream", head=head)
                return
            first, last = int(wanted[1]), min(int(wanted[2]), len(data) - 1)
            extra = {"Content-Range": f"bytes {first}-{last}/{len(data)}"}
            self._send(206, data[first : last + 1], "application/octet-stream", extra)

        def _send(
            self,
            status: int,
            body: bytes,
            kind: str,
            extra: dict[str, str] | None = None,
            *,
            head: bool = False,
        ) -> None:
            self.send_response(status)
            for name, value in {
                "Content-Type": kind,
                "Content-Length": str(len(body)),
                "Accept-Ranges": "bytes",
                "ETag": '"x"',
                **(extra or {}),
            }.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_stand_in_pads_without_changing_the_commitment() -> None:
    assert commp_of(PADDED).commitment == commp_of(PAYLOAD).commitment
    assert commp_of(PADDED).piece_size == commp_of(PAYLOAD).piece_size == PIECE_SIZE


def test_v2_verifies_the_bytes_and_their_length(provider: StandIn, tmp_path: Path) -> None:
    result = fetch_piece(provider.url, V2, tmp_path / "p.car", connections=2)
    assert (result.size, result.piece_size, result.length_check) == (3000, PIECE_SIZE, "v2")
    assert (tmp_path / "p.car").read_bytes() == PAYLOAD


@pytest.mark.parametrize("body", [PADDED, PAYLOAD[:-1]])
def test_v2_refuses_another_length_before_any_byte(
    provider: StandIn, tmp_path: Path, body: bytes
) -> None:
    provider.body, provider.file_size = body, len(body)
    with pytest.raises(FetchError, match="the v2 piece CID binds a payload of 3000 bytes"):
        fetch_piece(provider.url, V2, tmp_path / "p.car")
    assert list(tmp_path.iterdir()) == []


def test_v1_refuses_a_length_the_provider_metadata_does_not_record(
    provider: StandIn, tmp_path: Path
) -> None:
    provider.body = PADDED  # zeros added, metadata still says 3000
    with pytest.raises(FetchError, match="metadata records 3000 bytes") as caught:
        fetch_piece(provider.url, V1, tmp_path / "p.car")
    assert "Content-Length 4000" in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # refused before any byte was fetched


def test_v1_length_checked_against_the_metadata_or_not_at_all(
    provider: StandIn, tmp_path: Path
) -> None:
    result = fetch_piece(provider.url, V1, tmp_path / "a.car")
    assert result.length_check == "metadata"
    provider.body, provider.file_size = PADDED, None  # a provider without the metadata endpoint
    result = fetch_piece(provider.url, V1, tmp_path / "b.car")
    assert (result.length_check, result.size) == ("", 4000)  # only the commitment can be checked
