"""The key formats of `wallet import` / `wallet export`; errors never echo the key."""

from __future__ import annotations

import base64
import json

import pytest

from dataset_worker.wallet.formats import ParsedKey, lotus_export, parse_key_text

KEY = bytes(range(1, 33))


def lotus(kind: str, key: bytes) -> str:
    """What `lotus wallet export` prints: hex of the KeyInfo JSON (Go's field order)."""
    info = {"Type": kind, "PrivateKey": base64.b64encode(key).decode()}
    return json.dumps(info).encode().hex()


def test_the_three_formats() -> None:
    assert parse_key_text(lotus("secp256k1", KEY) + "\n") == ParsedKey("secp256k1", KEY)
    assert parse_key_text(lotus("delegated", KEY)) == ParsedKey("delegated", KEY)
    assert parse_key_text(KEY.hex()) == ParsedKey("secp256k1", KEY)
    assert parse_key_text(KEY.hex().upper()) == ParsedKey("secp256k1", KEY)
    assert parse_key_text("0x" + KEY.hex() + "\n") == ParsedKey("delegated", KEY)


def test_export_reads_back_and_is_lotus_shaped() -> None:
    text = lotus_export("secp256k1", KEY)
    assert json.loads(bytes.fromhex(text)) == {
        "Type": "secp256k1",
        "PrivateKey": base64.b64encode(KEY).decode(),
    }
    assert parse_key_text(text) == ParsedKey("secp256k1", KEY)


def test_repr_hides_the_key() -> None:
    assert KEY.hex() not in repr(parse_key_text(KEY.hex()))
    assert "hidden" in repr(parse_key_text(KEY.hex()))


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "no key given"),
        ("0x" + KEY.hex()[:-2], "0x followed by 64 hex digits"),
        ("zz" * 32, "unrecognised key"),
        ("abcd", "not JSON"),
        (json.dumps({"PrivateKey": "x"}).encode().hex(), "no Type"),
        (lotus("bls", KEY), "BLS keys are not supported"),
        (lotus("ed25519", KEY), "unsupported key type"),
        (lotus("secp256k1", KEY[:31]), "32 bytes, got 31"),
        (json.dumps({"Type": "secp256k1", "PrivateKey": "%%"}).encode().hex(), "not base64"),
    ],
)
def test_bad_keys_name_the_rule_without_echoing(text: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule) as caught:
        parse_key_text(text)
    if len(text) > 8:
        assert text.strip() not in str(caught.value)
