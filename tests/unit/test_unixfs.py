"""UnixFS Data messages and Singularity's level-by-level file assembly (docs/formats.md#file-dag)."""

from __future__ import annotations

import pytest

from dataset_worker.content import unixfs
from dataset_worker.content.cid import cid_to_str, dag_pb_cid, raw_cid
from dataset_worker.content.dagpb import decode_node, node_size
from dataset_worker.content.unixfs import (
    DIRECTORY_DATA,
    DataType,
    assemble_file_from_links,
    decode_data,
    file_data,
    hamt_shard_data,
)

HELLO = raw_cid(b"hello")
WORLD = raw_cid(b"world")


def test_file_data_has_filesize_and_unpacked_blocksizes() -> None:
    assert file_data([5, 5]) == b"\x08\x02\x18\x0a\x20\x05\x20\x05"
    assert file_data([1 << 20, 1]) == b"\x08\x02\x18\x81\x80\x40\x20\x80\x80\x40\x20\x01"


def test_directory_and_shard_data() -> None:
    assert DIRECTORY_DATA == b"\x08\x01"
    bitfield = bytes.fromhex("020000000002000000040000000000")
    expected = b"\x08\x05\x12\x0f" + bitfield + b"\x28\x22\x30\x80\x02"
    assert hamt_shard_data(bitfield) == expected
    assert hamt_shard_data(b"") == b"\x08\x05\x28\x22\x30\x80\x02"


def test_decode_data_round_trips() -> None:
    decoded = decode_data(file_data([3, 4]))
    assert (decoded.type, decoded.filesize, decoded.blocksizes) == (DataType.FILE, 7, (3, 4))
    assert decode_data(DIRECTORY_DATA).type is DataType.DIRECTORY
    shard = decode_data(hamt_shard_data(b"\x01"))
    assert (shard.type, shard.data, shard.hash_type, shard.fanout) == (
        DataType.HAMT_SHARD,
        b"\x01",
        0x22,
        256,
    )


def test_decode_data_accepts_packed_blocksizes() -> None:
    assert decode_data(b"\x08\x02\x22\x02\x03\x04").blocksizes == (3, 4)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"\x18\x01", "missing Type"),
        (b"\x08\x09", "unknown Type 9"),
        (b"\x08\x02\x12\x05ab", "runs past the end"),
        (b"\x08\x02\x1d\x00\x00\x00\x00", "unsupported wire type 5"),
        (b"\x0a\x01\x02", "field 1 must be a varint"),
        (b"\x08\x02\x10\x01", "field 2 must be length-delimited"),
    ],
)
def test_decode_data_rejects_malformed_messages(message: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        decode_data(message)


def test_two_links_golden_vector() -> None:
    dag = assemble_file_from_links([(HELLO, 5), (WORLD, 5)])
    assert cid_to_str(dag.root_cid) == "bafybeiejlvvmfokp5c6q2eqgbfjeaokz3nqho5c7yy3ov527vsatgsqfma"
    assert dag.size == 10
    [(cid, block)] = dag.nodes
    assert cid == dag.root_cid == dag_pb_cid(block)
    assert len(block) == 98
    node = decode_node(block)
    assert node_size(block, node.links) == 108
    assert [link.name for link in node.links] == [b"", b""]


def test_2000_links_golden_vector() -> None:
    dag = assemble_file_from_links([(HELLO, 5)] * 2000)
    assert cid_to_str(dag.root_cid) == "bafybeiamlrjlfotypfc5hse7uenmgmav7yq5vcb75yd7bxh2aaavxbi4ou"
    assert len(dag.nodes) == 3
    first_cid, first_block = dag.nodes[0]
    assert cid_to_str(first_cid) == "bafybeidci5xcdskgvefhv3x6kp6zpyxkbiqshqjbpsdgmk2k3mexzaggwi"
    assert len(decode_node(first_block).links) == 1024
    assert len(decode_node(dag.nodes[1][1]).links) == 976
    root_cid, root_block = dag.nodes[-1]
    assert root_cid == dag.root_cid
    root = decode_node(root_block)
    assert [link.tsize for link in root.links] == [5120, 4880]
    assert node_size(root_block, root.links) == 10103
    assert dag.size == 10000


def test_single_link_is_its_own_root() -> None:
    dag = assemble_file_from_links([(HELLO, 5)])
    assert (dag.root_cid, dag.size, dag.nodes) == (HELLO, 5, [])


def test_a_trailing_group_of_one_still_becomes_a_node() -> None:
    dag = assemble_file_from_links([(HELLO, 5)] * 1025)
    assert len(dag.nodes) == 3
    assert len(decode_node(dag.nodes[1][1]).links) == 1


def test_levels_are_emitted_left_to_right_then_upwards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unixfs, "LINKS_PER_NODE", 4)
    leaves = [(raw_cid(bytes([i])), 1) for i in range(20)]
    dag = assemble_file_from_links(leaves)
    # 20 links → 5 level-1 nodes → 2 level-2 nodes → root: 8 nodes in that order.
    assert len(dag.nodes) == 8
    level1 = [cid for cid, _ in dag.nodes[:5]]
    level2 = [decode_node(block) for _, block in dag.nodes[5:7]]
    assert [link.cid for link in level2[0].links] == level1[:4]
    assert [link.cid for link in level2[1].links] == level1[4:]
    root = decode_node(dag.nodes[-1][1])
    assert [link.cid for link in root.links] == [cid for cid, _ in dag.nodes[5:7]]
    assert [link.tsize for link in root.links] == [16, 4]
    assert decode_data(root.data or b"").blocksizes == (16, 4)
    assert dag.size == 20


def test_bad_links_are_refused() -> None:
    with pytest.raises(ValueError, match="zero links"):
        assemble_file_from_links([])
    with pytest.raises(ValueError, match="must not be negative"):
        assemble_file_from_links([(HELLO, -1), (WORLD, 5)])
