"""PieceCID v2 (FRC-0069) from a v1 piece CID and two sizes, and back.

The cross-check against the npm libraries is tests/e2e/test_interop_piececid2.py; the fixed
values below were made by them (tests/interop/commp.mjs --impl both) and are kept here so the
unit test stands without Node.js.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataset_worker.content.cid import cid_from_str, cid_to_str
from dataset_worker.content.piececid2 import (
    InvalidPieceCidV2,
    is_piece_cid_v2,
    parse_piece_cid_v2,
    piece_cid_v2,
    piece_cid_v2_from_v1_bytes,
)
from dataset_worker.content.varint import encode_uvarint

# 1000 bytes of /dev/urandom, hashed by the harness with and without --min-piece-size 4096.
V1 = "baga6ea4seaqatljql4u2ap533nsewcngyrkafntulan4qlyx7r2hkpfnm6wrqey"
V2 = "bafkzcibccacqtljql4u2ap533nsewcngyrkafntulan4qlyx7r2hkpfnm6wrqey"
V1_LIFTED = "baga6ea4seaqbgkiwlk6awcjyn5xeqz4gjjfiu6kdmpzhkndfmo5xomgxwkhtgey"
V2_LIFTED = "bafkzcibd7alqoezjcznlycyjhbxw4sdhqzfevctzinr7e5jumvr3w5zq26zi6myt"
ZEROS_1024 = "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy"  # docs/formats.md


def test_library_values() -> None:
    assert piece_cid_v2(V1, 1000, 1024) == V2
    assert piece_cid_v2(V1_LIFTED, 1000, 4096) == V2_LIFTED


def test_digest_layout() -> None:
    raw = cid_from_str(V2)
    # CIDv1, raw, multihash 0x1011 (varint 91 20), 34-byte digest: padding 16, height 5, root.
    assert raw[:6] == bytes((0x01, 0x55, 0x91, 0x20, 0x22, 1016 - 1000))
    assert raw[6] == 5  # 1024 = 32 · 2^5
    assert raw[7:] == cid_from_str(V1)[-32:]
    assert is_piece_cid_v2(raw) and not is_piece_cid_v2(cid_from_str(V1))


def test_parse_gives_the_sizes_and_v1_back() -> None:
    info = parse_piece_cid_v2(V2_LIFTED)
    assert (info.v1, info.payload_size, info.piece_size) == (V1_LIFTED, 1000, 4096)
    assert (info.padding, info.height) == (4064 - 1000, 7)
    assert info.root == cid_from_str(V1_LIFTED)[-32:]


@given(
    height=st.integers(2, 40),
    fraction=st.floats(0, 1),
    root=st.binary(min_size=32, max_size=32),
)
def test_round_trip(height: int, fraction: float, root: bytes) -> None:
    piece_size = 32 << height
    payload = int((piece_size * 127 // 128) * fraction)
    v1 = cid_to_str(b"\x01\x81\xe2\x03\x92\x20\x20" + root)
    info = parse_piece_cid_v2(piece_cid_v2(v1, payload, piece_size))
    assert (info.v1, info.payload_size, info.piece_size, info.root) == (
        v1,
        payload,
        piece_size,
        root,
    )


def test_a_full_piece_has_no_padding_and_a_multi_byte_varint_is_fine() -> None:
    assert parse_piece_cid_v2(piece_cid_v2(ZEROS_1024, 2032, 2048)).padding == 0
    big = piece_cid_v2(ZEROS_1024, 1, 1 << 35)  # padding needs a 5-byte varint
    assert parse_piece_cid_v2(big).payload_size == 1


@pytest.mark.parametrize(
    ("payload", "piece", "rule"),
    [
        (100, 1000, "power of two"),
        (10, 64, "at least 128"),
        (1017, 1024, "between 0 and 1016"),
        (-1, 1024, "between 0 and 1016"),
        (True, 1024, "integer"),
    ],
)
def test_bad_sizes_name_the_rule(payload: int, piece: int, rule: str) -> None:
    with pytest.raises(InvalidPieceCidV2, match=rule):
        piece_cid_v2(ZEROS_1024, payload, piece)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (V1, "codec 0xf101, multihash 0x1012"),
        ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "multihash 0x12"),
        ("Qm123", "must start with"),
        ("", "not a v2 piece CID"),
    ],
)
def test_not_a_v2_cid(text: str, rule: str) -> None:
    with pytest.raises(InvalidPieceCidV2, match=rule):
        parse_piece_cid_v2(text)


def test_a_v1_is_needed_to_make_a_v2() -> None:
    with pytest.raises(InvalidPieceCidV2, match="not a v1 piece CID"):
        piece_cid_v2(V2, 1000, 1024)


def _v2(digest: bytes) -> str:
    return cid_to_str(b"\x01\x55\x91\x20" + encode_uvarint(len(digest)) + digest)


def test_broken_digests_are_refused() -> None:
    root = bytes(32)
    with pytest.raises(InvalidPieceCidV2, match="does not hold"):
        parse_piece_cid_v2(_v2(b"\x00\x05" + root[:31]))
    with pytest.raises(InvalidPieceCidV2, match="below 2"):
        parse_piece_cid_v2(_v2(b"\x00\x01" + root))
    with pytest.raises(InvalidPieceCidV2, match="padding 2000 is more than"):
        parse_piece_cid_v2(_v2(encode_uvarint(2000) + b"\x05" + root))


def _outcome(v1: bytes, payload: object, piece: object) -> str:
    try:
        return piece_cid_v2(cid_to_str(v1), payload, piece)  # type: ignore[arg-type]
    except InvalidPieceCidV2 as exc:
        return f"error: {exc}"


@given(
    root=st.binary(min_size=32, max_size=32),
    piece=st.one_of(st.integers(2, 60).map(lambda h: 32 << h), st.integers(-5, 1 << 40)),
    fraction=st.floats(0, 1.01),
    damage=st.one_of(st.none(), st.integers(0, 38)),
)
def test_from_bytes_is_the_text_path(
    root: bytes, piece: int, fraction: float, damage: int | None
) -> None:
    """The binary entry point (which skips the base32 round trip for a well-formed v1 CID)
    gives the same CID, or the same error, as going through the text."""
    v1 = b"\x01\x81\xe2\x03\x92\x20\x20" + root
    if damage is not None:  # a row this project did not write: the text path decides
        v1 = v1[:damage] + bytes((v1[damage] ^ 0x40,)) + v1[damage + 1 :]
    payload = int(max(piece, 0) * 127 // 128 * fraction)
    try:
        got = piece_cid_v2_from_v1_bytes(v1, payload, piece)
    except InvalidPieceCidV2 as exc:
        got = f"error: {exc}"
    assert got == _outcome(v1, payload, piece)


def test_from_bytes_refuses_what_the_text_path_refuses() -> None:
    v1 = cid_from_str(V1)
    with pytest.raises(InvalidPieceCidV2, match="integer"):
        piece_cid_v2_from_v1_bytes(v1, 1000.0, 1024)  # type: ignore[arg-type]
    with pytest.raises(InvalidPieceCidV2, match="power of two"):
        piece_cid_v2_from_v1_bytes(v1, 100, 1000)
    with pytest.raises(InvalidPieceCidV2, match="not a v1 piece CID"):
        piece_cid_v2_from_v1_bytes(cid_from_str(V2), 1000, 1024)
    assert piece_cid_v2_from_v1_bytes(v1, 1000, 1024) == V2
