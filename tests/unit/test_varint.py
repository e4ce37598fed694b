"""Unsigned varints: the C encoder below 2**64 and the loop above it give LEB128; the decoder
reads back up to 10 bytes (below 2**70) and refuses longer ones."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataset_worker.content.varint import decode_uvarint, encode_uvarint


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


@pytest.mark.parametrize(
    "n", [0, 1, 127, 128, 255, 300, 16383, 16384, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70]
)
def test_boundaries(n: int) -> None:
    assert encode_uvarint(n) == _leb128(n)
    if n < 2**70:
        assert decode_uvarint(encode_uvarint(n)) == (n, len(_leb128(n)))
    else:
        with pytest.raises(ValueError, match="longer than 9 bytes"):
            decode_uvarint(encode_uvarint(n))


@given(st.integers(min_value=0, max_value=2**80))
def test_any_number_encodes_as_leb128(n: int) -> None:
    assert encode_uvarint(n) == _leb128(n)


@given(st.integers(min_value=0, max_value=2**70 - 1))
def test_numbers_below_2_70_round_trip(n: int) -> None:
    encoded = encode_uvarint(n)
    assert decode_uvarint(encoded) == (n, len(encoded))


def test_known_vectors() -> None:
    # The multiformats varint spec's examples.
    assert encode_uvarint(300) == bytes.fromhex("ac02")
    assert encode_uvarint(16384) == bytes.fromhex("808001")


def test_negative_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        encode_uvarint(-1)
