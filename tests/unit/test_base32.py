"""The C base32 encoder gives what the standard library gives, for every length."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataset_worker.content.base32 import b32_lower


def _stdlib(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")


@pytest.mark.parametrize("size", range(150))
def test_every_length_matches_the_standard_library(size: int) -> None:
    for data in (os.urandom(size), bytes(size), b"\xff" * size):
        assert b32_lower(data) == _stdlib(data)


@given(st.binary(max_size=300))
def test_any_bytes_match_the_standard_library(data: bytes) -> None:
    assert b32_lower(data) == _stdlib(data)


def test_rfc_4648_vectors() -> None:
    vectors = {b"": "", b"f": "my", b"fo": "mzxq", b"foo": "mzxw6", b"foob": "mzxw6yq"}
    vectors |= {b"fooba": "mzxw6ytb", b"foobar": "mzxw6ytboi"}
    for data, text in vectors.items():
        assert b32_lower(data) == text


def test_buffers_other_than_bytes() -> None:
    data = os.urandom(37)
    assert b32_lower(bytearray(data)) == b32_lower(memoryview(data)) == _stdlib(data)
    with pytest.raises(TypeError):
        b32_lower("text")  # type: ignore[arg-type]
