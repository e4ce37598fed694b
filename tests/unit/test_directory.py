"""UnixFS directories and HAMT shards as boxo v0.35.0 builds them (docs/formats.md#directories, docs/formats.md#directory-and-hamt-vectors)."""

from __future__ import annotations

import hashlib
import random

import pytest

from dataset_worker.content import hamt
from dataset_worker.content._multiformats import pb_link, pb_links
from dataset_worker.content.cid import cid_to_str, dag_pb_cid, raw_cid
from dataset_worker.content.dagpb import PBLink, decode_node, encode_node
from dataset_worker.content.directory import (
    HAMT_SHARDING_SIZE,
    build_basic_directory,
    build_directory,
    build_hamt_directory,
    directory_from_links,
    estimated_size,
    needs_hamt,
    read_directory_entries,
)
from dataset_worker.content.hamt import bitfield_bytes, hamt_hash
from dataset_worker.content.unixfs import (
    DataType,
    assemble_file_from_links,
    decode_data,
    hamt_shard_data,
)

Entries = dict[str, tuple[bytes, int]]

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data: bytes) -> str:
    """base58btc, the string form of CIDv0 (only the published Go vectors use CIDv0)."""
    number = int.from_bytes(data, "big")
    text = ""
    while number:
        number, digit = divmod(number, 58)
        text = _B58[digit] + text
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + text


def cid_v0(block: bytes) -> bytes:
    return b"\x12\x20" + hashlib.sha256(block).digest()


def named_raw(names: list[str], tsize: int | None = None) -> Entries:
    """Entries whose content is the name: raw CIDv1 sha256(name), Tsize len(name) by default."""
    return {n: (raw_cid(n.encode()), len(n) if tsize is None else tsize) for n in names}


# --- basic directories -------------------------------------------------------------------------


def test_basic_directory_lists_names_sorted() -> None:
    directory = build_directory({"test": (raw_cid(b"t"), 4), "name": (raw_cid(b"n"), 9)})
    node = decode_node(directory.block)
    assert [link.name for link in node.links] == [b"name", b"test"]
    assert node.data == b"\x08\x01"
    assert directory.cid == dag_pb_cid(directory.block)
    assert not directory.is_hamt
    assert directory.size == len(directory.block) + 13


def test_size_counts_the_link_tsizes_singularity_directory_test() -> None:
    # "test" (4 bytes) and "test2", a 2-link file whose link Tsize is its node Size() 108.
    test2 = assemble_file_from_links([(raw_cid(b"hello"), 5), (raw_cid(b"world"), 5)])
    directory = build_directory({"test": (raw_cid(b"test"), 4), "test2": (test2.root_cid, 108)})
    assert len(directory.block) == 101
    assert directory.size == 213


def test_names_compare_as_raw_utf8_bytes() -> None:
    directory = build_directory(named_raw(["é", "z", "Z", "a"]))
    names = [link.name for link in decode_node(directory.block).links]
    assert names == [b"Z", b"a", b"z", "é".encode()]


def test_undecodable_file_names_keep_their_bytes() -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")  # latin-1 bytes from os.fsdecode
    directory = build_directory({name: (raw_cid(b"x"), 1)})
    assert decode_node(directory.block).links[0].name == b"caf\xe9"
    assert read_directory_entries(directory.cid, lambda _: directory.block) == {
        name: (raw_cid(b"x"), 1)
    }


def test_empty_basic_directory() -> None:
    directory = build_directory({})
    assert directory.block == b"\x0a\x02\x08\x01"
    assert directory.size == 4


def test_bad_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="name must not be empty"):
        build_directory({"": (raw_cid(b"x"), 1)})
    with pytest.raises(ValueError, match="'a': Tsize must not be negative"):
        build_directory({"a": (raw_cid(b"x"), -1)})


def _sorted_links(entries: Entries) -> list[tuple[bytes, bytes, int]]:
    return sorted((n.encode("utf-8", "surrogateescape"), cid, t) for n, (cid, t) in entries.items())


@pytest.mark.parametrize(("count", "is_hamt"), [(0, False), (1, False), (130, False), (4000, True)])
def test_sorted_links_build_the_same_directory(count: int, is_hamt: bool) -> None:
    """directory_from_links (one native call for all the links) matches build_directory, with
    names past 127 bytes and Tsizes past 2**35 (several-byte varints), basic and HAMT alike."""
    rng = random.Random(count)
    entries: Entries = {}
    for i in range(count):
        name = f"{i:05d}" + "é" * rng.choice([0, 1, 70]) + ("\udcff" if i % 7 == 0 else "")
        entries[name] = (
            raw_cid(name.encode("utf-8", "surrogateescape")),
            rng.choice([0, 5, 1 << 40]),
        )
    expected = build_directory(entries)
    got = directory_from_links(_sorted_links(entries))
    assert got == expected
    assert got.is_hamt == needs_hamt(entries) == is_hamt


def test_pb_links_are_the_records_one_by_one() -> None:
    links = [(b"a" * 200, raw_cid(b"x"), 1 << 63), (b"b", dag_pb_cid(b"y"), 0), (b"c", b"", 127)]
    assert pb_links(links) == b"".join(pb_link(cid, b"", name, t) for name, cid, t in links)
    assert pb_links([]) == b""
    with pytest.raises(TypeError, match="link 1 is not"):
        pb_links([links[0], (b"a", "not bytes", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a list"):
        pb_links(tuple(links))  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        pb_links([(b"a", raw_cid(b"x"), -1)])


def test_sorted_links_refuse_bad_entries_as_build_directory_does() -> None:
    with pytest.raises(ValueError, match="name must not be empty"):
        directory_from_links([(b"", raw_cid(b"x"), 1), (b"a", raw_cid(b"x"), 1)])
    with pytest.raises(ValueError, match="'b': Tsize must not be negative"):
        directory_from_links([(b"a", raw_cid(b"x"), 1), (b"b", raw_cid(b"x"), -1)])


# --- when to shard -----------------------------------------------------------------------------


def test_estimate_is_name_bytes_plus_cid_bytes() -> None:
    assert estimated_size({"ab": (raw_cid(b""), 1), "é": (raw_cid(b""), 1)}) == 2 + 36 + 2 + 36


def test_threshold_is_reached_at_greater_or_equal() -> None:
    names = [f"file_{i:023d}" for i in range(4096)]  # 28-byte names: 64 estimate bytes each
    assert estimated_size(named_raw(names)) == HAMT_SHARDING_SIZE
    assert needs_hamt(named_raw(names))
    assert not needs_hamt(named_raw(names[:4095]))


@pytest.mark.parametrize(
    ("count", "is_hamt", "cid", "size", "nodes"),
    [
        (4095, False, "bafybeid2gy5doker37okhtovjf4fu6dqma2j4ms7emivojnj4tvi4our4i", 409504, 1),
        (4096, True, "bafybeidiv2t4kvhvt5ire7panw67iqzoii7e24e6bakhkdggpda4wqg3su", 450884, 390),
        (4097, True, "bafybeidzx3kyml63hkfnfiyzbmcu4z6s42fst267lio3gpinnbdqq4h3gu", 450986, 390),
    ],
)
def test_b1_threshold_boundary(count: int, is_hamt: bool, cid: str, size: int, nodes: int) -> None:
    directory = build_directory(named_raw([f"file_{i:023d}" for i in range(count)]))
    assert (directory.is_hamt, cid_to_str(directory.cid), directory.size) == (is_hamt, cid, size)
    assert len(directory.blocks) == nodes


# --- HAMT shards -------------------------------------------------------------------------------


def test_murmur3_h1_big_endian() -> None:
    assert hamt_hash(b"").hex() == "0000000000000000"
    assert hamt_hash(b"0").hex() == "2ac9debed546a380"
    assert hamt_hash(b"file1").hex() == "499728c4d21b6ed4"
    assert hamt_hash(b"a.txt").hex() == "59a0c46995547089"
    assert hamt_hash(b"DIRNAME0").hex() == "2fd563374c704a00"


def test_bitfield_bytes() -> None:
    assert bitfield_bytes(1) == b"\x01"
    assert bitfield_bytes(1 << 255)[0] == 0x80 and len(bitfield_bytes(1 << 255)) == 32
    slots = (1 << 0x2A) | (1 << 0x49) | (1 << 0x71)
    assert bitfield_bytes(slots).hex() == "020000000002000000040000000000"
    assert bitfield_bytes((1 << 256) - 1) == b"\xff" * 32


def test_b2_one_entry() -> None:
    directory = build_hamt_directory(named_raw(["0"]))
    assert (
        cid_to_str(directory.cid) == "bafybeihp4uie2lupkpcawzm53lcj4dmqtmaxxyy32u7szc36pp3duw54ji"
    )
    node = decode_node(directory.block)
    assert [link.name for link in node.links] == [b"2A0"]
    assert decode_data(node.data or b"").data == bytes.fromhex("040000000000")


def test_b2_three_entries_exact_block() -> None:
    directory = build_hamt_directory(named_raw(["0", "1", "2"]))
    assert (
        cid_to_str(directory.cid) == "bafybeicsmci37pighefd5sirkkir7ijqdmp665zb6dzqu6vhpawgmxkike"
    )
    link = b"\x12\x2d\x0a\x24\x01\x55\x12\x20%s\x12\x03%s\x18\x01"
    expected = b"".join(
        link % (hashlib.sha256(content).digest(), name)
        for name, content in ((b"2A0", b"0"), (b"492", b"2"), (b"711", b"1"))
    ) + bytes.fromhex("0a18080512 0f020000000002000000040000000000 2822308002".replace(" ", ""))
    assert directory.block == expected
    assert len(expected) == 167


def test_b2_forty_entries() -> None:
    directory = build_hamt_directory(named_raw([str(i) for i in range(40)]))
    assert (
        cid_to_str(directory.cid) == "bafybeibynl34zkkahxq74ifczfnxdkdeanncnhtwrasb7xxlscr4darsuq"
    )
    assert (len(directory.blocks), directory.size) == (5, 2354)


def test_child_shards_are_named_by_prefix_with_cumulative_tsize() -> None:
    directory = build_hamt_directory(named_raw([str(i) for i in range(40)]))
    blocks = dict(directory.blocks)
    root = decode_node(directory.block)
    shard_links = [link for link in root.links if len(link.name) == 2]
    assert shard_links
    for link in shard_links:
        child = decode_node(blocks[link.cid])
        assert link.tsize == len(blocks[link.cid]) + sum(c.tsize for c in child.links)
        assert decode_data(child.data or b"").type is DataType.HAMT_SHARD


def test_b3_singularity_shaped_nested_tree() -> None:
    big = build_directory(named_raw([str(i) for i in range(7000)], tsize=4))
    assert big.is_hamt
    assert cid_to_str(big.cid) == "bafybeicz6o3a53ranbqifwdfxi5q6rlg2cpvovfry6wocsa6yqdvo7epi4"
    assert (big.size, len(big.block), len(big.blocks)) == (429934, 12075, 632)
    small = build_directory(named_raw([str(i) for i in range(50)], tsize=4))
    assert not small.is_hamt
    assert cid_to_str(small.cid) == "bafybeifjwyj24hntt6hrq7uvqknbksm5s7wk3qipauinxfsuz7hnjonb54"
    assert (small.size, len(small.block)) == (2494, 2294)
    ds = build_directory(
        {
            "a.txt": (raw_cid(b"a.txt"), 1_000_000_000),
            "big": (big.cid, big.size),
            "small": (small.cid, small.size),
        }
    )
    assert cid_to_str(ds.cid) == "bafybeifs3ucf4fcd35hjaxon2nur3gdzscjcxffcryfr6z7tczrfdjgqda"
    assert (ds.size, len(ds.block)) == (1000432584, 156)
    assert b"\x18\x80\x94\xeb\xdc\x03" in ds.block


def test_a2_kubo_sharness_cidv1() -> None:
    entries = {f"file{i}": (raw_cid(f"{i}\n".encode()), len(f"{i}\n")) for i in range(1, 2001)}
    directory = build_hamt_directory(entries)
    assert (
        cid_to_str(directory.cid) == "bafybeibiemewfzzdyhq2l74wrd6qj2oz42usjlktgnlqv4yfawgouaqn4u"
    )
    assert (len(directory.block), directory.size, len(directory.blocks)) == (12028, 140794, 292)
    root = decode_node(directory.block)
    assert root.data == bytes.fromhex("080512 20" + "ff" * 7 + "bf" + "ff" * 24 + "2822308002")
    assert len(root.links) == 255


def _cidv0_file_node(content: bytes) -> bytes:
    """kubo's CIDv0 single-block file: dag-pb with only Data = UnixFS{File, Data, filesize}."""
    unixfs = b"\x08\x02\x12" + bytes((len(content),)) + content + b"\x18" + bytes((len(content),))
    return b"\x0a" + bytes((len(unixfs),)) + unixfs


def test_a2_kubo_sharness_cidv0() -> None:
    nodes = {f"file{i}": _cidv0_file_node(f"{i}\n".encode()) for i in range(1, 2001)}
    assert base58(cid_v0(nodes["file100"])) == "QmZ3RfWk1u5LEGYLHA633B5TNJy3Du27K6Fny9wcxpowGS"
    entries = {name: (cid_v0(block), len(block)) for name, block in nodes.items()}
    flat = build_basic_directory(entries, cid_version=0)
    assert base58(flat.cid) == "QmavrTrQG4VhoJmantURAYuw3bowq3E2WcvP36NRQDAC1N"
    sharded = build_hamt_directory(entries, cid_version=0)
    assert base58(sharded.cid) == "QmSCJD1KYLhVVHqBK3YyXuoEqHt7vggyJhzoFYbT8v1XYL"


def test_a1_boxo_dir_building_cidv0() -> None:
    empty_dir = cid_v0(b"\x0a\x02\x08\x01")
    assert base58(empty_dir) == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    names = [f"DIRNAME{i}" for i in range(200)]
    random.Random(7).shuffle(names)  # insertion order must not matter
    directory = build_hamt_directory({n: (empty_dir, 4) for n in names}, cid_version=0)
    assert base58(directory.cid) == "QmY89TkSEVHykWMHDmyejSWFj9CYNtvzw4UwnT9xbc4Zjc"
    assert len(directory.blocks) == 55


def test_insertion_order_does_not_matter() -> None:
    names = [str(i) for i in range(300)]
    shuffled = names[:]
    random.Random(1).shuffle(shuffled)
    first = build_hamt_directory(named_raw(names))
    second = build_hamt_directory(named_raw(shuffled))
    assert first.cid == second.cid
    assert first.blocks[-1][0] == first.cid


def test_full_hash_collision_is_too_deep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hamt, "hamt_hash", lambda name: b"\x00" * 8)
    with pytest.raises(ValueError, match="sharded directory too deep"):
        build_hamt_directory(named_raw(["a", "b"]))


# --- reading entries back ----------------------------------------------------------------------


@pytest.mark.parametrize("count", [5, 5000])
def test_entries_read_back(count: int) -> None:
    entries = named_raw([f"entry-{i:08d}-with-a-longer-name" for i in range(count)])
    directory = build_directory(entries)
    assert directory.is_hamt == (count == 5000)
    blocks = dict(directory.blocks)
    assert read_directory_entries(directory.cid, blocks.__getitem__) == entries


def test_reading_a_file_node_as_a_directory_fails() -> None:
    file_node = assemble_file_from_links([(raw_cid(b"a"), 1), (raw_cid(b"b"), 1)])
    [(cid, block)] = file_node.nodes
    with pytest.raises(ValueError, match="not a directory: UnixFS type FILE"):
        read_directory_entries(cid, lambda _: block)


def test_a_hamt_deeper_than_the_hash_is_refused() -> None:
    # A shard whose only child is itself: only possible with blocks that were never checked
    # against their CIDs, and without a bound it would be walked for ever.
    block = encode_node([PBLink(b"self", b"00", 0)], hamt_shard_data(bitfield_bytes(1)))
    reads = 0

    def get_block(_cid: bytes) -> bytes:
        nonlocal reads
        reads += 1
        assert reads < 1000, "the walk does not end"
        return block

    with pytest.raises(ValueError, match=f"HAMT directory deeper than {hamt.MAX_DEPTH} levels"):
        read_directory_entries(b"self", get_block)
    assert reads == hamt.MAX_DEPTH


# --- HAMT as a stream (docs/architecture.md#wide-directories) -----------------------------------


def test_stream_hamt_gives_blocks_children_first_and_checks_the_order() -> None:
    names = [b"entry-%d" % i for i in range(3000)]  # deep enough for shards inside shards
    entries = sorted(
        hamt.HashedEntry(hamt.hamt_hash(name), name, raw_cid(name), len(name)) for name in names
    )
    seen: list[bytes] = []

    def sink(cid: bytes, block: bytes) -> None:
        children = [link.cid for link in decode_node(block).links if len(link.name) == 2]
        assert set(children) <= set(seen)  # every child shard came before its parent
        seen.append(cid)

    root = hamt.stream_hamt(iter(entries), sink)
    built = hamt.build_hamt({e.name: (e.cid, e.tsize) for e in entries})  # from a dict
    assert root == (built.cid, built.size) and seen[-1] == built.cid
    assert len(seen) > 257  # the root, its full first level, and deeper shards
    assert hamt.stream_hamt(iter([])) is None
    with pytest.raises(ValueError, match="not sorted by hash"):
        hamt.stream_hamt(iter(entries[:10][::-1]))
    twin = entries[0]._replace(name=b"twin")  # two names with the same 64-bit hash
    with pytest.raises(ValueError, match="same hash"):
        hamt.stream_hamt(iter([entries[0], twin]))
