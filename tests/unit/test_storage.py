"""Local storages: listing order, ranged reads with change detection, atomic output files."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

from dataset_worker.storage import (
    LocalOutput,
    LocalSource,
    SourceChangedError,
    SpaceInfo,
    StorageError,
    choose_output,
    open_output,
    open_source,
)
from dataset_worker.storage._localread import read_ranges as read_plain
from dataset_worker.storage.base import SmallRange, SmallRangeReader


def walk(root: Path) -> tuple[list[tuple[str, bool, int]], list[str]]:
    errors: list[str] = []
    entries = [
        (e.path, e.is_dir, e.size)
        for e in LocalSource(root).walk(lambda path, exc: errors.append(f"{path}: {exc}"))
    ]
    return entries, errors


def test_walk_is_breadth_first_and_sorted_by_bytes(tmp_path: Path) -> None:
    for rel in ["b/z.txt", "b/a/deep.txt", "B.txt", "a b/x", "é.txt", "a.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"12345")
    (tmp_path / "empty").mkdir()
    entries, errors = walk(tmp_path)
    assert errors == []
    assert [(p, d) for p, d, _ in entries] == [
        ("B.txt", False),  # uppercase sorts first: byte order, no case folding
        ("a b", True),
        ("a.txt", False),
        ("b", True),
        ("empty", True),
        ("é.txt", False),  # UTF-8 bytes 0xC3… sort after ASCII
        ("a b/x", False),
        ("b/a", True),
        ("b/z.txt", False),
        ("b/a/deep.txt", False),
    ]
    assert {size for _, is_dir, size in entries if not is_dir} == {5}


def test_walk_skips_symlinks_and_reports_them(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_bytes(b"x")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    entries, errors = walk(tmp_path)
    assert [p for p, _, _ in entries] == ["real.txt"]
    assert len(errors) == 1 and "link.txt" in errors[0] and "symbolic link" in errors[0]


def test_walk_of_missing_root_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        walk(tmp_path / "nope")


def test_mtime_is_recorded_in_nanoseconds(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    os.utime(tmp_path / "f", ns=(1, 1_600_000_000_987_654_321))
    (entry,) = LocalSource(tmp_path).walk(lambda *_: None)
    assert (entry.size, entry.mtime_ns) == (3, 1_600_000_000_987_654_321)


def test_open_range_reads_from_the_offset(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"0123456789")
    st = (tmp_path / "d" / "f").stat()
    stream = LocalSource(tmp_path).open_range("d/f", 4, size=10, mtime_ns=st.st_mtime_ns)
    try:
        buf = bytearray(3)
        assert stream.readinto(memoryview(buf)) == 3 and bytes(buf) == b"456"
    finally:
        stream.close()


@pytest.mark.parametrize("change", ["size", "mtime", "deleted"])
def test_open_range_detects_a_changed_file(tmp_path: Path, change: str) -> None:
    path = tmp_path / "sub" / "f.bin"
    path.parent.mkdir()
    path.write_bytes(b"0123456789")
    st = path.stat()
    if change == "size":
        path.write_bytes(b"short")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif change == "mtime":
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    else:
        path.unlink()
    with pytest.raises(SourceChangedError, match=r"sub/f\.bin"):
        LocalSource(tmp_path).open_range("sub/f.bin", 0, size=10, mtime_ns=st.st_mtime_ns)
    with pytest.raises(SourceChangedError, match=r"sub/f\.bin"):
        LocalSource(tmp_path).read_range("sub/f.bin", 0, 10, size=10, mtime_ns=st.st_mtime_ns)
    # In a batch, after a file that is fine: the same error, from the same words.
    (tmp_path / "ok").write_bytes(b"ok")
    batch = [SmallRange("ok", 0, 2, 2, -1), SmallRange("sub/f.bin", 0, 10, 10, st.st_mtime_ns)]
    with pytest.raises(SourceChangedError, match=r"sub/f\.bin"):
        LocalSource(tmp_path).read_ranges(batch)


def test_read_range_reads_the_range_or_less_at_end_of_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"0123456789")
    mtime = (tmp_path / "d" / "f").stat().st_mtime_ns
    source = LocalSource(tmp_path)
    assert isinstance(source, SmallRangeReader)
    assert source.read_range("d/f", 4, 3, size=10, mtime_ns=mtime) == b"456"
    assert source.read_range("d/f", 8, 5, size=10, mtime_ns=mtime) == b"89"
    assert source.read_range("d/f", 0, 0, size=-1, mtime_ns=-1) == b""


def test_read_ranges_reads_each_range_as_read_range_does(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    files = {"d/f": b"0123456789", "e": b"", "d/g": os.urandom(3000)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    mtime = {name: (tmp_path / name).stat().st_mtime_ns for name in files}
    ranges = [
        SmallRange("d/f", 4, 3, 10, mtime["d/f"]),
        SmallRange("e", 0, 0, 0, mtime["e"]),
        SmallRange("d/g", 0, 3000, 3000, -1),
        SmallRange("d/f", 8, 5, -1, -1),  # ends early: two bytes
    ]
    source = LocalSource(tmp_path)
    assert isinstance(source, SmallRangeReader)
    expected = [
        source.read_range(r.path, r.offset, r.length, size=r.size, mtime_ns=r.mtime_ns)
        for r in ranges
    ]
    assert source.read_ranges(ranges) == (b"".join(expected), [3, 0, 3000, 2])
    assert source.read_ranges([]) == (b"", [])
    data, lengths = read_plain(os.fsencode(tmp_path), ranges)
    assert [sys.getrefcount(data), sys.getrefcount(lengths)] == [2, 2]  # nothing leaks


def test_read_ranges_goes_on_after_a_range_it_read_in_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The C reader leaves a range it cannot read plainly to Python, which raises its error; when
    # Python reads it after all (the file settled in between), the batch goes on in C.
    for name in "abc":
        (tmp_path / name).write_bytes(name.encode() * 3)
    calls: list[str] = []

    def stop_at_b(root: bytes, ranges: list[SmallRange]) -> tuple[bytes, list[int]]:
        calls.append("".join(r.path for r in ranges))
        return read_plain(root, ranges[:1] if ranges[0].path == "a" else ranges)

    monkeypatch.setattr("dataset_worker.storage.local.read_plain_ranges", stop_at_b)
    batch = [SmallRange(name, 0, 3, 3, -1) for name in "abc"]
    assert LocalSource(tmp_path).read_ranges(batch) == (b"aaabbbccc", [3, 3, 3])
    assert calls == ["abc", "c"]


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "a//b", "a/./b", "a/", "", "a\0b"]
)
def test_read_ranges_refuses_paths_that_leave_the_root(tmp_path: Path, path: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").write_bytes(b"x")
    source = LocalSource(tmp_path)
    ok = SmallRange("a/b", 0, 1, 1, -1)
    with pytest.raises(StorageError, match="inside the storage"):
        source.read_ranges([ok, SmallRange(path, 0, 1, -1, -1)])


def test_paths_cannot_leave_the_root(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="inside the storage"):
        LocalSource(tmp_path).open_range("../etc/passwd", 0, size=-1, mtime_ns=0)
    with pytest.raises(StorageError, match="inside the storage"):
        LocalSource(tmp_path).read_range("../etc/passwd", 0, 1, size=-1, mtime_ns=0)


def test_temp_output_is_published_atomically(tmp_path: Path) -> None:
    out = LocalOutput(tmp_path)
    temp = out.create_temp("pack7")
    temp.stream.write(b"car bytes")
    assert [p.name for p in tmp_path.iterdir()] == [temp.path.name]
    assert temp.path.name.startswith(".dw-pack7-") and temp.path.name.endswith(".car.part")
    temp.pad_to(16)
    assert temp.size == 16
    with temp.read_back() as reader:
        assert reader.read() == b"car bytes" + bytes(7)
    assert temp.publish("piece.car") == "piece.car"
    temp.discard()  # a no-op once published
    assert [p.name for p in tmp_path.iterdir()] == ["piece.car"]
    assert (tmp_path / "piece.car").read_bytes() == b"car bytes" + bytes(7)
    assert out.exists("piece.car") == 16 and out.exists("other.car") is None
    out.remove("piece.car")
    assert list(tmp_path.iterdir()) == []


def test_discard_and_stale_temp_cleanup(tmp_path: Path) -> None:
    out = LocalOutput(tmp_path)
    kept = out.create_temp("pack1")
    stale = [out.create_temp("pack2"), out.create_temp("pack2")]  # as a crashed run leaves them
    stale[0].stream.write(b"x")
    for temp in stale:
        temp.stream.close()
    assert out.remove_temps("pack2") == 2
    assert [p.name for p in tmp_path.iterdir()] == [kept.path.name]
    kept.discard()
    assert list(tmp_path.iterdir()) == []


def test_publish_refuses_path_names(tmp_path: Path) -> None:
    temp = LocalOutput(tmp_path).create_temp("t")
    with pytest.raises(StorageError, match="invalid output file name"):
        temp.publish("../escape.car")
    temp.discard()


class FakeOutput:
    def __init__(self, name: str, free: int | None, total: int | None) -> None:
        self.name, self.free, self.total = name, free, total

    def space(self) -> SpaceInfo:
        return SpaceInfo(self.free, self.total)

    def describe(self) -> str:
        return self.name

    def create_temp(self, tag: str) -> object:
        raise NotImplementedError

    def remove_temps(self, tag: str) -> int:
        return 0

    def exists(self, path: str) -> int | None:
        return None

    def remove(self, path: str) -> None:
        pass


def test_choose_output_skips_full_storages() -> None:
    full = FakeOutput("full", 5, 1000)  # <= 1 % free
    small = FakeOutput("small", 100, 1000)  # not enough for 500 bytes
    good = FakeOutput("good", 900, 1000)
    outputs = [(1, full), (2, small), (3, good)]
    for seed in range(20):
        assert choose_output(outputs, 500, rng=random.Random(seed))[0] == 3  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="full: 5 bytes free of 1000"):
        choose_output([(1, full), (2, small)], 500)  # type: ignore[list-item]
    unknown = FakeOutput("s3", None, None)  # cannot tell: weight 1
    assert choose_output([(9, unknown)], 10**15)[0] == 9  # type: ignore[list-item]


def test_open_by_type(tmp_path: Path) -> None:
    assert isinstance(open_source("local", str(tmp_path)), LocalSource)
    assert isinstance(open_output("local", str(tmp_path)), LocalOutput)
    with pytest.raises(StorageError, match='storage type "ftp" is not supported'):
        open_source("ftp", "bucket")
    with pytest.raises(StorageError, match="must start with s3://"):
        open_source("s3", "bucket")
