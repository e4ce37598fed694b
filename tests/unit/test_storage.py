"""Local storages: listing order, ranged reads with change detection, atomic output files."""

from __future__ import annotations

import errno
import json
import os
import pwd
import random
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dataset_worker.storage import (
    LocalOutput,
    LocalSource,
    SourceChangedError,
    SourceEntry,
    SpaceInfo,
    StorageError,
    _localread,
    choose_output,
    open_output,
    open_source,
)
from dataset_worker.storage import local as local_module
from dataset_worker.storage._localread import STAT_FAILED
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


# --- listing in C (_localread.list_dir) with LocalSource's words for what it skips --------------


def listing(root: Path) -> tuple[list[SourceEntry], list[tuple[str, type[Exception], str]]]:
    """Every entry of a walk, and each on_error call as (path, exception type, message)."""
    errors: list[tuple[str, type[Exception], str]] = []
    entries = list(
        LocalSource(root).walk(lambda path, exc: errors.append((path, type(exc), str(exc))))
    )
    return entries, errors


def test_walk_lists_in_byte_order_of_names(tmp_path: Path) -> None:
    # Uppercase before lowercase, a name before the longer names it starts, punctuation by its
    # byte, and non-ASCII by its UTF-8 bytes (U+FFFD before U+1F600, unlike in UTF-16).
    names = ["b", "a", "a.txt", "a b", "ab", "a-", "A", "Z", "_", "é", "e", "\ufffd", "😀", "中"]
    (tmp_path / "sub").mkdir()
    for name in names:
        (tmp_path / name).write_bytes(b"")
        (tmp_path / "sub" / name).write_bytes(b"")
    entries, errors = listing(tmp_path)
    expected = sorted(names, key=lambda name: name.encode())
    assert expected[:8] == ["A", "Z", "_", "a", "a b", "a-", "a.txt", "ab"]
    assert expected[-4:] == ["é", "中", "\ufffd", "😀"]
    assert errors == []
    assert [e.path for e in entries] == sorted([*names, "sub"], key=str.encode) + [
        f"sub/{name}" for name in expected
    ]
    # Names that are not UTF-8 (reported, not listed) sort by their bytes too, among the others:
    # the code points of their surrogate escapes would put them elsewhere.
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for raw in [b"\xff", b"\xc3", b"\xc3\xa9", b"\xef\xbf\xbd"]:
        with open(os.fsencode(mixed) + b"/" + raw, "wb"):
            pass
    in_order = ["\udcc3", "é", "\ufffd", "\udcff"]
    assert [row[0] for row in _localread.list_dir(mixed)] == in_order != sorted(in_order)


def test_walk_entries_are_source_entries_with_lstat_sizes_and_mtimes(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    rng = random.Random(7)
    for i in range(40):
        path = tmp_path / ("d" if i % 2 else "") / f"f{i}"
        path.write_bytes(os.urandom(rng.randrange(0, 5000)))
        os.utime(path, ns=(1, rng.randrange(-(10**18), 4 * 10**18)))
    # Past 2262 (or before 1677) a time in ns does not fit a C long long; lstat gives what the
    # file system kept (ext4 keeps this one, tmpfs too).
    (tmp_path / "far").write_bytes(b"")
    os.utime(tmp_path / "far", ns=(1, 2**63 + 12345))
    entries, errors = listing(tmp_path)
    assert errors == [] and len(entries) == 42
    for entry in entries:
        assert type(entry) is SourceEntry and entry.hash == ""
        info = os.lstat(tmp_path / entry.path)
        if entry.is_dir:
            assert entry == SourceEntry(entry.path, True, 0, 0, "")
        else:
            assert (entry.size, entry.mtime_ns) == (info.st_size, info.st_mtime_ns)


def test_walk_reports_names_that_are_not_utf8_and_skips_them(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    os.mkdir(root + b"/sub")
    os.mkdir(root + b"/bad-dir\xff")  # not listed, so not descended into
    for name in [
        b"ok",
        b"bad\xe9.txt",
        b"sub/x\xc3",
        b"sub/surrogate\xed\xa0\x80",
        b"bad-dir\xff/f",
    ]:
        with open(root + b"/" + name, "wb"):
            pass
    entries, errors = listing(tmp_path)
    assert [e.path for e in entries] == ["ok", "sub"]
    bad = [
        "bad-dir\udcff",
        "bad\udce9.txt",
        "sub/surrogate\udced\udca0\udc80",  # an encoded surrogate is not valid UTF-8 either
        "sub/x\udcc3",
    ]
    assert errors == [
        (path, StorageError, f"name of {path!r} is not valid UTF-8; skipped") for path in bad
    ]


def test_walk_reports_symlinks_and_special_files_and_skips_them(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "real").write_bytes(b"x")
    (tmp_path / "sub" / "to-file").symlink_to(tmp_path / "sub" / "real")
    (tmp_path / "to-dir").symlink_to(tmp_path / "sub")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "sub" / "fifo")
    entries, errors = listing(tmp_path)
    assert [e.path for e in entries] == ["sub", "sub/real"]
    assert errors == [
        ("dangling", StorageError, "dangling is a symbolic link; skipped"),
        ("to-dir", StorageError, "to-dir is a symbolic link; skipped"),
        ("sub/fifo", StorageError, "sub/fifo is a special file; skipped"),
        ("sub/to-file", StorageError, "sub/to-file is a symbolic link; skipped"),
    ]


def test_walk_of_empty_folders(tmp_path: Path) -> None:
    assert listing(tmp_path) == ([], [])
    (tmp_path / "a" / "b").mkdir(parents=True)
    entries, errors = listing(tmp_path)
    assert entries == [SourceEntry("a", True), SourceEntry("a/b", True)] and errors == []


@pytest.mark.parametrize("replace", ["removed", "a file"])
def test_walk_reports_a_folder_it_cannot_open_as_os_scandir_would(
    tmp_path: Path, replace: str
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "f").write_bytes(b"")
    errors: list[tuple[str, Exception]] = []
    walk = LocalSource(tmp_path).walk(lambda path, exc: errors.append((path, exc)))
    assert next(walk).path == "d"  # the root is listed; "d" will be listed later
    os.remove(tmp_path / "d" / "f")
    os.rmdir(tmp_path / "d")
    if replace == "a file":
        (tmp_path / "d").write_bytes(b"")
    assert [e.path for e in walk] == ["e", "e/f"]
    with pytest.raises(OSError) as scandir_error:
        os.scandir(f"{tmp_path}/d")
    ((path, exc),) = errors
    assert path == "d" and type(exc) is type(scandir_error.value)
    assert isinstance(exc, OSError) and exc.errno == scandir_error.value.errno
    assert exc.filename == f"{tmp_path}/d" and str(exc) == str(scandir_error.value)


def _list_unreadable_folders(root: str) -> tuple[list[str], list[list[str]]]:
    """A folder that may not be read and one that may not be searched, listed: the entries'
    paths and each error as [path, exception type, message]."""
    base = Path(root)
    for name in ["locked", "unsearchable"]:
        (base / name).mkdir()
        (base / name / "f").write_bytes(b"")
    (base / "locked").chmod(0)
    (base / "unsearchable").chmod(0o600)  # readdir works, stat of an entry does not
    try:
        entries, errors = listing(base)
    finally:
        (base / "locked").chmod(0o700)
        (base / "unsearchable").chmod(0o700)
    return [e.path for e in entries], [[p, t.__name__, m] for p, t, m in errors]


def _as_nobody(fn: Callable[[str], object], root: str) -> object:
    """`fn(root)` in a forked child that has dropped root for `nobody` (root reads and
    searches folders whatever their mode); its result comes back as JSON through a pipe."""
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user to drop root for")
    os.chown(root, nobody.pw_uid, nobody.pw_gid)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        signal.alarm(60)  # a child stuck on a lock another thread held at fork dies, not hangs
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.write(write_end, json.dumps(fn(root)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed"
    return json.loads(output)


def test_walk_reports_folders_it_may_not_read_or_search() -> None:
    # Not tmp_path: as root, its parents are closed to the unprivileged child.
    root = tempfile.mkdtemp(prefix="dw-unreadable-")
    try:
        if os.geteuid() == 0:
            result = _as_nobody(_list_unreadable_folders, root)
        else:
            result = list(_list_unreadable_folders(root))
    finally:
        shutil.rmtree(root)
    assert result == [
        ["locked", "unsearchable"],
        [
            ["locked", "PermissionError", f"[Errno 13] Permission denied: '{root}/locked'"],
            [
                "unsearchable/f",
                "PermissionError",
                f"[Errno 13] Permission denied: '{root}/unsearchable/f'",
            ],
        ],
    ]


def test_a_failed_stat_is_reported_as_direntry_stat_raised_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "gone").write_bytes(b"")
    with os.scandir(tmp_path / "sub") as scan:
        (item,) = scan
    os.remove(tmp_path / "sub" / "gone")
    with pytest.raises(OSError) as direntry_error:
        item.stat(follow_symlinks=False)
    # A file that vanishes between readdir and its stat cannot be timed from here: the C side's
    # report of it is replayed instead.
    real = _localread.list_dir
    monkeypatch.setattr(
        local_module,
        "list_dir",
        lambda folder: [("gone", STAT_FAILED, 0, 0, errno.ENOENT), *real(folder)],
    )
    (tmp_path / "sub" / "kept").write_bytes(b"")
    errors: list[tuple[str, Exception]] = []
    entries = LocalSource(tmp_path)._list("sub", lambda path, exc: errors.append((path, exc)))
    assert entries == [SourceEntry("sub/kept", False, 0, entries[0].mtime_ns)]
    ((path, exc),) = errors
    assert path == "sub/gone" and type(exc) is FileNotFoundError
    assert isinstance(exc, OSError) and exc.filename == direntry_error.value.filename
    assert str(exc) == str(direntry_error.value)


def reference_list_dir(folder: Path) -> list[tuple[str, int, int, int, int]]:
    """What list_dir should give, from os.scandir and os.lstat."""
    kinds = [
        (stat.S_ISREG, _localread.FILE),
        (stat.S_ISDIR, _localread.DIR),
        (stat.S_ISLNK, _localread.SYMLINK),
    ]
    rows = []
    with os.scandir(os.fsencode(folder)) as scan:
        for item in scan:
            info = os.lstat(item.path)
            try:
                name = item.name.decode()
                kind = next((k for test, k in kinds if test(info.st_mode)), _localread.SPECIAL)
            except UnicodeDecodeError:
                name, kind = os.fsdecode(item.name), _localread.BAD_NAME
            rows.append((item.name, (name, kind, info.st_size, info.st_mtime_ns, 0)))
    return [row for _, row in sorted(rows)]  # by the raw names


def test_list_dir_gives_what_scandir_and_lstat_give(tmp_path: Path) -> None:
    rng = random.Random(11)
    alphabet = ["a", "B", "z", "0", ".", "-", " ", "é", "ß", "中", "😀"]
    names = {"".join(rng.choices(alphabet, k=rng.randrange(1, 6))) for _ in range(400)}
    names -= {".", ".."}
    root = os.fsencode(tmp_path)
    for i, name in enumerate(sorted(names)):
        path = tmp_path / name
        if i % 17 == 0:
            path.mkdir()
        elif i % 23 == 0:
            path.symlink_to("target")
        elif i % 29 == 0:
            os.mkfifo(path)
        else:
            path.write_bytes(b"x" * rng.randrange(0, 300))
            os.utime(path, ns=(0, rng.randrange(0, 2 * 10**18)))
    for raw in [b"\xff", b"a\xe9", b"z\xc3\x28", b"\xed\xa0\x80"]:
        with open(root + b"/" + raw, "wb") as f:
            f.write(b"12")
    got = _localread.list_dir(tmp_path)
    assert len(got) == len(names) + 4 > 300
    assert got == reference_list_dir(tmp_path)
    assert _localread.list_dir(root) == got == _localread.list_dir(str(tmp_path))


def test_list_dir_raises_like_os_scandir_naming_the_folder_as_given(tmp_path: Path) -> None:
    folders: list[str | bytes] = [f"{tmp_path}/missing", os.fsencode(tmp_path) + b"/missing"]
    for folder in folders:
        with pytest.raises(FileNotFoundError) as raised:
            _localread.list_dir(folder)
        assert raised.value.filename == folder and raised.value.errno == errno.ENOENT
    with pytest.raises(TypeError):
        _localread.list_dir(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="null"):
        _localread.list_dir(f"{tmp_path}/a\x00b")


def test_list_dir_hands_over_its_results_without_keeping_a_reference(tmp_path: Path) -> None:
    # A reference kept by the C code would leak every name of every folder a scan lists.
    for name in ["alpha", "b\xe9ta", "gamma"]:  # not one character: those are shared
        (tmp_path / name).write_bytes(b"")
    os.mkdir(os.fsencode(tmp_path) + b"/delta\xff")
    rows = _localread.list_dir(tmp_path)
    # Each held by its container alone: getrefcount's argument is the second reference.
    assert sys.getrefcount(rows) == 2
    assert [sys.getrefcount(rows[i]) for i in range(4)] == [2] * 4
    assert [sys.getrefcount(rows[i][0]) for i in range(4)] == [2] * 4


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
