"""The deals client's wire pieces: ULIDs, the CurioAuth header, the mk20.Deal body, Retry-After."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from dataset_worker.deals.auth import auth_digest, curio_auth_header, minute_stamp
from dataset_worker.deals.mk20client import Answer, parse_sp_url, retry_after_seconds
from dataset_worker.deals.ulid import is_ulid, new_ulid, ulid_time_ms
from dataset_worker.deals.wire import DealTerms, deal_body
from tests.support.curio_sp import CurioStandIn, deal_validator
from tests.support.deal_keys import key_signer


def test_ulid_has_the_spec_layout() -> None:
    value = new_ulid(now_ms=1469918176385, entropy=bytes(10))
    assert value == "01ARYZ6S410000000000000000"  # the spec's timestamp example, zero entropy
    assert is_ulid(value) and ulid_time_ms(value) == 1469918176385
    assert len({new_ulid() for _ in range(1000)}) == 1000


def test_minute_stamp_is_go_rfc3339_truncated_to_the_minute() -> None:
    when = datetime(2025, 7, 15, 17, 0, 59, 999999, tzinfo=UTC)
    assert minute_stamp(when) == "2025-07-15T17:00:00Z"


def test_auth_header_verifies_with_the_stand_in() -> None:
    signer = key_signer()
    sp = CurioStandIn(network="f")
    header = curio_auth_header(signer, "post", "/market/mk20/deal")
    assert header.startswith("CurioAuth secp256k1:")
    _, address_b64, sig_b64 = header[len("CurioAuth ") :].split(":")
    assert base64.b64decode(address_b64) == signer.address_bytes
    assert base64.b64decode(sig_b64)[0] == 1 and len(base64.b64decode(sig_b64)) == 66
    assert sp.authenticate(header, "POST", "/market/mk20/deal") == signer.address
    # Bound to the method and the path.
    assert sp.authenticate(header, "GET", "/market/mk20/deal") is None
    assert sp.authenticate(header, "POST", "/market/mk20/status/x") is None


def test_auth_digest_is_sha256_of_the_four_parts() -> None:
    when = datetime(2025, 7, 15, 17, 0, 30, tzinfo=UTC)
    expected = hashlib.sha256(b"\x01abc" + b"POST" + b"/market/mk20/deal" + b"2025-07-15T17:00:00Z")
    assert auth_digest(b"\x01abc", "post", "/market/mk20/deal", when) == expected.digest()


def test_an_old_header_is_refused() -> None:
    signer = key_signer()
    old = datetime(2020, 1, 1, tzinfo=UTC)
    header = curio_auth_header(signer, "GET", "/market/mk20/products", now=old)
    assert CurioStandIn().authenticate(header, "GET", "/market/mk20/products") is None


def test_deal_body_matches_curio_swagger() -> None:
    terms = DealTerms(
        provider="f01000", client=key_signer().address, duration=518400, start_epoch=5
    )
    body = deal_body(
        new_ulid(),
        "bafkzcibcaapao7j2ir3y7iq2qjsnt4bwzfewqtcvlqrulmipa3ivlt7a4vbuvba",
        ["http://127.0.0.1:1/piece/x", "http://127.0.0.1:2/piece/x"],
        terms,
    )
    errors = [e.message for e in deal_validator().iter_errors(body)]
    assert errors == []
    assert body["data"]["piece_cid"] == {
        "/": "bafkzcibcaapao7j2ir3y7iq2qjsnt4bwzfewqtcvlqrulmipa3ivlt7a4vbuvba"
    }
    assert body["products"]["retrieval_v1"]["announce_piece"] is False
    assert "allocation_id" not in body["products"]["ddo_v1"]
    # A misspelt field fails the stand-in's check (Go would silently drop it).
    body["products"]["ddo_v1"]["start_epch"] = 5
    assert list(deal_validator().iter_errors(body))


def test_sp_url_and_retry_after() -> None:
    assert parse_sp_url("http://127.0.0.1:9/sub/") == ("http", "127.0.0.1", 9, "/sub")
    with pytest.raises(ValueError, match="--sp-url"):
        parse_sp_url("ftp://x")
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("Wed, 01 Jan 2025 00:00:10 GMT", now) == 10.0
    assert Answer(426, "Reason: Deal rejected").reason == "Deal rejected"


def test_signed_reads_of_the_stand_in_and_an_unsigned_one() -> None:
    import http.client

    from dataset_worker.deals.mk20client import Mk20Client
    from tests.support.curio_sp import curio_sp

    with curio_sp() as sp:
        client = Mk20Client(sp.url, key_signer())
        try:
            assert client.products().json() == {"products": ["ddo_v1", "retrieval_v1"]}
            assert client.sources().json() == {"sources": ["http"]}
            # A deal id that is not the client's: 401, as Curio's auth middleware answers.
            assert client.deal_status("01ARYZ6S410000000000000000").status == 401
        finally:
            client.close()
        port = int(sp.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/market/mk20/products")
        assert conn.getresponse().status == 401
        conn.close()
