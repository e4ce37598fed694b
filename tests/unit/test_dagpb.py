"""dag-pb encoding as boxo writes it: links first, Name and Tsize always present, sorted names."""

from __future__ import annotations

import hashlib

import pytest

from dataset_worker.content.cid import dag_pb_cid, raw_cid
from dataset_worker.content.dagpb import (
    PBLink,
    decode_node,
    encode_link,
    encode_node,
    node_cid,
    node_size,
)

HELLO = raw_cid(b"hello")


def test_link_always_carries_empty_name_and_zero_tsize() -> None:
    encoded = encode_link(PBLink(HELLO, b"", 0))
    assert encoded == b"\x12\x2a\x0a\x24" + HELLO + b"\x12\x00\x18\x00"


def test_link_with_name_and_multibyte_tsize() -> None:
    encoded = encode_link(PBLink(HELLO, b"a.txt", 1_000_000_000))
    body = b"\x0a\x24" + HELLO + b"\x12\x05a.txt" + b"\x18\x80\x94\xeb\xdc\x03"
    assert encoded == b"\x12" + bytes((len(body),)) + body


def test_links_come_before_data() -> None:
    block = encode_node([PBLink(HELLO, b"x", 5)], b"\x08\x01")
    assert block.endswith(b"\x0a\x02\x08\x01")
    assert block.startswith(b"\x12")


def test_node_without_data_has_no_data_field() -> None:
    block = encode_node([PBLink(HELLO, b"", 5)], None)
    assert decode_node(block).data is None
    assert block == encode_link(PBLink(HELLO, b"", 5))


def test_links_sorted_by_raw_name_bytes() -> None:
    names = ["z", "é", "a", "B", "name", "test"]
    links = [PBLink(HELLO, name.encode(), 1) for name in names]
    decoded = decode_node(encode_node(links, b"\x08\x01"))
    # Uppercase before lowercase; "é" (c3 a9) after every ASCII name; no case folding.
    assert [link.name.decode() for link in decoded.links] == ["B", "a", "name", "test", "z", "é"]


def test_sort_is_stable_for_equal_names() -> None:
    first, second = raw_cid(b"1"), raw_cid(b"2")
    decoded = decode_node(encode_node([PBLink(second, b"", 1), PBLink(first, b"", 2)], None))
    assert [link.cid for link in decoded.links] == [second, first]


def test_unsorted_mode_keeps_the_given_order() -> None:
    links = [PBLink(HELLO, b"b", 1), PBLink(HELLO, b"a", 1)]
    decoded = decode_node(encode_node(links, None, sort_links=False))
    assert [link.name for link in decoded.links] == [b"b", b"a"]


def test_decode_round_trip() -> None:
    links = (PBLink(HELLO, b"", 5), PBLink(raw_cid(b"world"), b"", 300))
    block = encode_node(links, b"\x08\x02\x18\xb1\x02", sort_links=False)
    node = decode_node(memoryview(block))
    assert node.links == links
    assert node.data == b"\x08\x02\x18\xb1\x02"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"\x1a\x00", "unexpected field key 0x1a"),
        (b"\x0a\x05\x08", "runs past the end"),
        (b"\x12\x02\x18\x01", "link without Hash"),
        (b"\x0a\x00\x0a\x00", "duplicate Data"),
        (b"\x12\x02\x20\x01", "unexpected PBLink field key 0x20"),
    ],
)
def test_decode_rejects_malformed_blocks(block: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_node(block)


def test_negative_tsize_is_refused() -> None:
    with pytest.raises(ValueError, match="Tsize must not be negative"):
        encode_link(PBLink(HELLO, b"", -1))


def test_node_size_is_block_plus_own_link_tsizes() -> None:
    links = [PBLink(HELLO, b"", 5), PBLink(HELLO, b"", 7)]
    block = encode_node(links, None)
    assert node_size(block, links) == len(block) + 12


def test_node_cid_versions() -> None:
    block = b"\x0a\x02\x08\x01"
    assert node_cid(block) == dag_pb_cid(block)
    assert node_cid(block, 0) == b"\x12\x20" + hashlib.sha256(block).digest()
    with pytest.raises(ValueError, match="CID version must be 0 or 1"):
        node_cid(block, 2)
