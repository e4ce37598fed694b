"""The `directories.data` blob (worker/jobs/dirdata.py): its bytes, and that it reads back."""

from __future__ import annotations

import zlib

import pytest

from dataset_worker.content.cid import raw_cid
from dataset_worker.content.directory import directory_from_links
from dataset_worker.worker.jobs.dirdata import (
    DirEntry,
    build_node,
    decode_entries,
    encode_entries,
    encode_sorted,
    sorted_entries,
)

CID_A = raw_cid(b"a")
CID_B = raw_cid(b"b")


def test_blob_layout_is_the_documented_one() -> None:
    """Version 1, then zlib of: count, and per entry sorted by name bytes, name, CID, Tsize and
    the extra blocks (count, then each CID and block), lengths as uvarints."""
    entries = {
        "é": DirEntry(CID_B, 300),  # sorts after "b" by its bytes c3 a9; Tsize takes 2 bytes
        "b": DirEntry(CID_A, 5, ((CID_B, b"node"),)),
    }
    body = (
        b"\x02"
        + b"\x01b" + bytes((len(CID_A),)) + CID_A + b"\x05"
        + b"\x01" + bytes((len(CID_B),)) + CID_B + b"\x04node"
        + b"\x02\xc3\xa9" + bytes((len(CID_B),)) + CID_B + b"\xac\x02"
        + b"\x00"
    )  # fmt: skip
    assert encode_entries(entries) == b"\x01" + zlib.compress(body, 1)
    assert decode_entries(encode_entries(entries)) == entries


@pytest.mark.parametrize("count", [0, 1, 1000])
def test_sorted_entries_give_the_same_blob_and_node(count: int) -> None:
    entries = {
        f"f{i:07d}\udcff": DirEntry(raw_cid(str(i).encode()), i * 1_000_003) for i in range(count)
    }
    items = sorted_entries(entries)
    assert [i[0] for i in items] == sorted(n.encode("utf-8", "surrogateescape") for n in entries)
    assert decode_entries(encode_sorted(items)) == entries
    if entries:
        assert directory_from_links(items) == build_node(entries)
