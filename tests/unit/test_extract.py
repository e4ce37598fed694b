"""`dataset-worker extract`: trees rebuilt from CARs, and hostile or broken CARs refused.

The CARs are built here with the project's own encoders (CarWriter, dag-pb, UnixFS, HAMT), so
each test states exactly what is in them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataset_worker.cli import app
from dataset_worker.content.car import CarWriter
from dataset_worker.content.cid import DAG_PB_PREFIX, EMPTY_FILE_CID, cid_to_str, raw_cid
from dataset_worker.content.dagpb import PBLink, encode_node
from dataset_worker.content.directory import build_basic_directory, build_hamt_directory
from dataset_worker.content.hamt import bitfield_bytes
from dataset_worker.content.unixfs import DIRECTORY_DATA, file_data, file_node, hamt_shard_data
from dataset_worker.content.varint import encode_uvarint
from dataset_worker.retrieve.carindex import BlockIndex, ExtractError
from dataset_worker.retrieve.extract import extract_tree, plan_tree

runner = CliRunner()
Block = tuple[bytes, bytes]


def raw(data: bytes) -> Block:
    return raw_cid(data), data


def node(block: bytes) -> Block:
    return DAG_PB_PREFIX + hashlib.sha256(block).digest(), block


def directory(entries: dict[bytes, bytes]) -> Block:
    """A basic directory over raw names (no sorting or checks: hostile names pass through)."""
    links = [PBLink(cid, name, 0) for name, cid in entries.items()]
    return node(encode_node(links, DIRECTORY_DATA, sort_links=False))


def unixfs_file(
    links: list[tuple[bytes, int]], *, filesize: int | None = None, inline: bytes = b""
) -> Block:
    """A UnixFS file node whose declared sizes can be made to lie."""
    message = b"\x08\x02"
    if inline:
        message += b"\x12" + encode_uvarint(len(inline)) + inline
    total = sum(size for _, size in links) + len(inline)
    message += b"\x18" + encode_uvarint(total if filesize is None else filesize)
    for _, size in links:
        message += b"\x20" + encode_uvarint(size)
    pb_links = [PBLink(cid, b"", size) for cid, size in links]
    return node(encode_node(pb_links, message, sort_links=False))


def write_car(path: Path, root: bytes, blocks: list[Block]) -> Path:
    with open(path, "wb") as out:
        writer = CarWriter(out, root)
        for cid, data in blocks:
            writer.write_block(cid, data)
    return path


def extract(tmp_path: Path, root: bytes, *cars: Path) -> Path:
    out = tmp_path / "out"
    with BlockIndex() as index:
        for car in cars:
            index.add_car(car)
        extract_tree(index, root, out)
    return out


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def everything_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_a_tree_with_split_files_hamt_and_empty_parts_comes_back(tmp_path: Path) -> None:
    part1, part2, part3 = raw(b"hello "), raw(b"split "), raw(b"world")
    range_node = node(file_node([(part2[0], 6), (part3[0], 5)]))  # a range node, in CAR 1
    split_file = node(file_node([(part1[0], 6), (range_node[0], 11)]))  # file node, in CAR 2
    inline_file = unixfs_file([], inline=b"data inside the node")
    many = {f"f{i:03}": raw(f"content {i}".encode()) for i in range(40)}
    hamt = build_hamt_directory({name: (cid, len(data)) for name, (cid, data) in many.items()})
    empty_dir = directory({})
    nested = build_basic_directory({"ünïcødé 文件.txt": (raw(b"unicode")[0], 7)})
    root = build_basic_directory(
        {
            "split.bin": (split_file[0], 17),
            "inline.txt": (inline_file[0], 20),
            "empty.bin": (EMPTY_FILE_CID, 0),
            "hamt": (hamt.cid, hamt.size),
            "empty-dir": (empty_dir[0], 4),
            "a": (nested.cid, nested.size),
        }
    )
    car1 = write_car(
        tmp_path / "1.car",
        part1[0],
        [part1, part2, part3, range_node, raw(b""), *many.values(), raw(b"unicode")],
    )
    car2 = write_car(
        tmp_path / "2.car",
        root.cid,
        [*root.blocks, split_file, inline_file, *hamt.blocks, empty_dir, *nested.blocks],
    )
    out = extract(tmp_path, root.cid, car1, car2)
    expected = {
        "split.bin": b"hello split world",
        "inline.txt": b"data inside the node",
        "empty.bin": b"",
        "a/ünïcødé 文件.txt": b"unicode",
        **{f"hamt/{name}": data for name, (_, data) in many.items()},
    }
    assert files_under(out) == expected
    assert (out / "empty-dir").is_dir() and not list((out / "empty-dir").iterdir())
    assert not [p for p in out.rglob(".dw-extract-*")]


def test_the_cli_reports_what_it_wrote(tmp_path: Path) -> None:
    leaf = raw(b"abc")
    root = build_basic_directory({"x.txt": (leaf[0], 3)})
    cars = tmp_path / "cars"
    cars.mkdir()
    write_car(cars / "p.car", root.cid, [*root.blocks, leaf])
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["extract", "--root", cid_to_str(root.cid), "-o", str(out), str(cars)]
    )
    assert result.exit_code == 0, result.output
    assert (
        result.stdout
        == f"{out}: 1 file (3 bytes) in 0 folders, from 1 CAR file; every block verified\n"
    )
    assert (out / "x.txt").read_bytes() == b"abc"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (b"a/b", 'contains "/"'),
        (b"..", "is a relative path component"),
        (b".", "is a relative path component"),
        (b"nul\x00byte", "contains a NUL byte"),
        (b"/etc/passwd", "is an absolute path"),
        (b"", "is empty"),
    ],
)
def test_unsafe_names_are_refused_before_anything_is_written(
    tmp_path: Path, name: bytes, problem: str
) -> None:
    leaf = raw(b"pwned")
    good = raw(b"fine")
    inner = directory({name: leaf[0]})
    root = directory({b"aaa-first.txt": good[0], b"dir": inner[0]})
    car = write_car(tmp_path / "evil.car", root[0], [root, inner, leaf, good])
    before = everything_under(tmp_path)
    with pytest.raises(ExtractError) as caught:
        extract(tmp_path, root[0], car)
    assert str(caught.value) == f"'dir': entry name {name!r} {problem}: refusing to extract"
    assert everything_under(tmp_path) == before  # refused while planning: not even out/
    assert not Path("/etc/passwd").read_bytes().startswith(b"pwned")


def test_an_unsafe_name_inside_a_hamt_is_refused(tmp_path: Path) -> None:
    leaf = raw(b"x")
    hamt = build_hamt_directory({"ok": (leaf[0], 1), "../escape": (leaf[0], 1)})
    car = write_car(tmp_path / "h.car", hamt.cid, [*hamt.blocks, leaf])
    with pytest.raises(ExtractError, match=r"entry name b'../escape' contains \"/\""):
        extract(tmp_path, hamt.cid, car)
    assert not (tmp_path / "escape").exists()


def test_a_hamt_shard_linked_twice_is_refused(tmp_path: Path) -> None:
    leaf = raw(b"x")
    child = node(encode_node([PBLink(leaf[0], b"05x", 1)], hamt_shard_data(bitfield_bytes(1 << 5))))
    twice = [PBLink(child[0], b"00", 10), PBLink(child[0], b"01", 10)]
    root = node(encode_node(twice, hamt_shard_data(bitfield_bytes(0b11))))
    car = write_car(tmp_path / "h.car", root[0], [root, child, leaf])
    with pytest.raises(ExtractError, match=r"HAMT shard bafy\w+ is linked twice"):
        extract(tmp_path, root[0], car)


def test_a_file_bomb_is_planned_quickly_and_refused_for_its_size(tmp_path: Path) -> None:
    """1024 links to one node of 1024 links to one 1 MiB leaf: 1 TiB from three blocks."""
    leaf = raw(bytes(1 << 20))
    gib = node(file_node([(leaf[0], 1 << 20)] * 1024))
    tib = node(file_node([(gib[0], 1 << 30)] * 1024))
    root = directory({b"bomb.bin": tib[0]})
    car = write_car(tmp_path / "b.car", root[0], [root, tib, gib, leaf])
    with pytest.raises(ExtractError, match=r"the tree holds 1099511627776 bytes but .* free"):
        extract(tmp_path, root[0], car)
    assert not (tmp_path / "out").exists()


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    one, two = raw(b"1"), raw(b"2")
    root = node(
        encode_node([PBLink(one[0], b"same", 1), PBLink(two[0], b"same", 1)], DIRECTORY_DATA)
    )
    car = write_car(tmp_path / "d.car", root[0], [root, one, two])
    with pytest.raises(ExtractError, match="two entries are named b'same'"):
        extract(tmp_path, root[0], car)


class UncheckedIndex(BlockIndex):
    """Blocks under CIDs that do not hash to them: the only way a DAG can hold a cycle."""

    def __init__(self, blocks: dict[bytes, bytes]) -> None:
        super().__init__()
        self.blocks = blocks

    def get(self, cid: bytes) -> bytes:
        return self.blocks[cid]

    def length(self, cid: bytes) -> int:
        return len(self.blocks[cid])


def fake_cid(label: str) -> bytes:
    return DAG_PB_PREFIX + hashlib.sha256(label.encode()).digest()


def test_a_directory_linking_to_itself_or_an_ancestor_is_a_cycle() -> None:
    top, child = fake_cid("top"), fake_cid("child")
    itself = {top: encode_node([PBLink(top, b"loop", 0)], DIRECTORY_DATA)}
    with pytest.raises(ExtractError, match=r"'loop': directory .* contains itself \(a cycle\)"):
        plan_tree(UncheckedIndex(itself), top)
    ancestor = {
        top: encode_node([PBLink(child, b"child", 0)], DIRECTORY_DATA),
        child: encode_node([PBLink(top, b"up", 0)], DIRECTORY_DATA),
    }
    with pytest.raises(ExtractError, match=r"'child/up': directory .* contains itself"):
        plan_tree(UncheckedIndex(ancestor), top)


def test_a_file_node_linking_to_itself_is_a_cycle() -> None:
    top, looped = fake_cid("top"), fake_cid("file")
    blocks = {
        top: encode_node([PBLink(looped, b"f", 0)], DIRECTORY_DATA),
        looped: encode_node([PBLink(looped, b"", 5)], file_data([5])),
    }
    with pytest.raises(ExtractError, match=r"'f': file node .* links to itself \(a cycle\)"):
        plan_tree(UncheckedIndex(blocks), top)


def test_a_block_that_does_not_match_its_cid_is_refused(tmp_path: Path) -> None:
    """With real hashing a cycle needs a block stored under a CID that is not its hash."""
    top = fake_cid("top")
    car = write_car(
        tmp_path / "c.car", top, [(top, encode_node([PBLink(top, b"loop", 0)], DIRECTORY_DATA))]
    )
    with pytest.raises(
        ExtractError, match=r"c.car: block bafy\w+ at offset \d+ does not match its CID"
    ):
        extract(tmp_path, top, car)


@pytest.mark.parametrize(
    ("links", "filesize", "message"),
    [
        ([(b"abcde", 5), (b"xyz", 5)], None, "holds 3 bytes but its parent declares 5"),
        ([(b"abcde", 5), (b"xyz", 3)], 9, "declares 9 bytes but its blocks hold 8"),
    ],
)
def test_declared_sizes_that_disagree_with_the_data_are_refused(
    tmp_path: Path, links: list[tuple[bytes, int]], filesize: int | None, message: str
) -> None:
    leaves = [raw(data) for data, _ in links]
    lying = unixfs_file(
        [(leaf[0], size) for leaf, (_, size) in zip(leaves, links, strict=True)], filesize=filesize
    )
    root = directory({b"f.bin": lying[0]})
    car = write_car(tmp_path / "s.car", root[0], [root, lying, *leaves])
    with pytest.raises(ExtractError, match=message):
        extract(tmp_path, root[0], car)
    assert not (tmp_path / "out").exists()


def test_block_sizes_must_match_the_links(tmp_path: Path) -> None:
    leaf = raw(b"abc")
    message = b"\x08\x02\x18\x03"  # a filesize, but no blocksize for the one link
    bad = node(encode_node([PBLink(leaf[0], b"", 3)], message))
    root = directory({b"f": bad[0]})
    car = write_car(tmp_path / "b.car", root[0], [root, bad, leaf])
    with pytest.raises(ExtractError, match="declares 0 block sizes for 1 links"):
        extract(tmp_path, root[0], car)


def test_a_missing_block_is_named_by_its_cid_and_the_file_that_needs_it(tmp_path: Path) -> None:
    present, absent = raw(b"here"), raw(b"not in any CAR")
    split = node(file_node([(present[0], 4), (absent[0], 14)]))
    root = directory({b"a.txt": present[0], b"split.bin": split[0]})
    car = write_car(tmp_path / "m.car", root[0], [root, split, present])
    with pytest.raises(ExtractError) as caught:
        extract(tmp_path, root[0], car)
    assert str(caught.value) == (
        f"'split.bin' needs a missing block: block {cid_to_str(absent[0])} is in none of the CARs"
    )
    assert not (tmp_path / "out").exists()


def _gappy_tree(tmp_path: Path) -> tuple[bytes, Path, bytes]:
    """A tree whose CAR lacks one leaf of `d/split.bin` and the node of folder `gone`."""
    present, absent = raw(b"here"), raw(b"not in any CAR")
    split = node(file_node([(present[0], 4), (absent[0], 14)]))
    whole = raw(b"whole file")
    sub = directory({b"split.bin": split[0], b"whole.txt": whole[0]})
    lost = directory({b"x": whole[0]})
    root = directory({b"a.txt": present[0], b"d": sub[0], b"gone": lost[0]})
    car = write_car(tmp_path / "m.car", root[0], [root, sub, split, present, whole])
    return root[0], car, absent[0]


def test_partial_restores_every_complete_file_and_lists_the_rest(tmp_path: Path) -> None:
    root, car, absent = _gappy_tree(tmp_path)
    out = tmp_path / "out"
    with BlockIndex() as index:
        index.add_car(car)
        summary = extract_tree(index, root, out, partial=True)
    assert files_under(out) == {"a.txt": b"here", "d/whole.txt": b"whole file"}
    assert (summary.files, summary.bytes) == (2, 14)
    assert [path for path, _ in summary.unrestored] == ["d/split.bin", "gone"]
    assert f"block {cid_to_str(absent)} is in none of the CARs" in summary.unrestored[0][1]


def test_the_cli_partial_lists_what_it_could_not_restore(tmp_path: Path) -> None:
    root, car, _ = _gappy_tree(tmp_path)
    out = tmp_path / "out"
    args = ["extract", "--root", cid_to_str(root), "-o", str(out), str(car)]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and not out.exists()
    assert "needs a missing block" in refused.stderr and "--partial" in refused.stderr
    partial = runner.invoke(app, [*args, "--partial"])
    assert partial.exit_code == 1  # not the whole tree
    assert partial.stdout.startswith(f"{out}: 2 files (14 bytes) in 1 folder, from 1 CAR file")
    assert "could not restore 2 entries (blocks missing from the CARs):" in partial.stderr
    assert "  'd/split.bin': block " in partial.stderr and "  'gone': block " in partial.stderr
    assert (out / "d" / "whole.txt").read_bytes() == b"whole file"


def test_corrupt_file_data_is_caught_and_the_file_not_written(tmp_path: Path) -> None:
    good, victim = raw(b"good data"), raw(b"original")
    root = directory({b"a-good.txt": good[0], b"b-victim.txt": victim[0]})
    car = write_car(tmp_path / "x.car", root[0], [root, good, victim])
    data = bytearray(car.read_bytes())
    spot = bytes(data).index(b"original")
    data[spot : spot + 8] = b"ORIGINAL"  # same length: the framing still parses
    car.write_bytes(bytes(data))
    with pytest.raises(ExtractError, match=r"x.car: block bafk\w+ at offset \d+ does not match"):
        extract(tmp_path, root[0], car)
    assert everything_under(tmp_path / "out") == ["a-good.txt"]  # no victim, no temporary file


def test_nothing_is_written_through_a_symbolic_link_in_the_output(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").symlink_to(outside)
    leaf = raw(b"escaped?")
    inner = directory({b"f.txt": leaf[0]})
    root = directory({b"a": inner[0]})
    car = write_car(tmp_path / "l.car", root[0], [root, inner, leaf])
    with pytest.raises(ExtractError, match=r"'a' exists and is not a folder .* symbolic link"):
        extract(tmp_path, root[0], car)
    assert list(outside.iterdir()) == []


def test_a_file_in_the_way_of_a_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_bytes(b"a file")
    leaf = raw(b"x")
    inner = directory({b"f": leaf[0]})
    root = directory({b"a": inner[0]})
    car = write_car(tmp_path / "w.car", root[0], [root, inner, leaf])
    with pytest.raises(ExtractError, match=r"'a' exists and is not a folder"):
        extract(tmp_path, root[0], car)
    assert (out / "a").read_bytes() == b"a file"


def test_unsupported_nodes_and_roots_are_refused(tmp_path: Path) -> None:
    symlink = node(encode_node([], b"\x08\x04\x12\x0b/etc/passwd"))  # a UnixFS symlink
    root = directory({b"link": symlink[0]})
    car = write_car(tmp_path / "s.car", root[0], [root, symlink])
    with pytest.raises(ExtractError, match="'link': a UnixFS symlink node is not extracted"):
        extract(tmp_path, root[0], car)
    leaf = raw(b"just a file")
    car = write_car(tmp_path / "f.car", leaf[0], [leaf])
    with pytest.raises(ExtractError, match="is a file, not a directory"):
        extract(tmp_path, leaf[0], car)


def test_cli_errors_name_the_problem(tmp_path: Path) -> None:
    bad_root = runner.invoke(
        app, ["extract", "--root", "nope", "-o", str(tmp_path / "o"), str(tmp_path)]
    )
    assert bad_root.exit_code == 1
    assert bad_root.stderr.startswith('error: --root: not a base32 CIDv1: "nope"')
    missing = runner.invoke(
        app,
        [
            "extract",
            "--root",
            cid_to_str(EMPTY_FILE_CID),
            "-o",
            str(tmp_path / "o"),
            str(tmp_path / "absent.car"),
        ],
    )
    assert missing.exit_code == 1
    assert missing.stderr == f"error: {tmp_path / 'absent.car'}: no such file or folder\n"
    (tmp_path / "junk.car").write_bytes(b"\x05junk!")
    junk = runner.invoke(
        app,
        [
            "extract",
            "--root",
            cid_to_str(EMPTY_FILE_CID),
            "-o",
            str(tmp_path / "o"),
            str(tmp_path / "junk.car"),
        ],
    )
    assert junk.exit_code == 1
    assert junk.stderr.startswith(f"error: {tmp_path / 'junk.car'}: bad CAR header")
    assert not os.path.exists(tmp_path / "o")
