"""The SFTP storage against a private OpenSSH server: listing order, range reads, change checks,
output by temporary file and rename, recovery, and the real job bodies giving the same pieces
as a local folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dataset_worker.db import Database
from dataset_worker.db.models import JobState, JobType
from dataset_worker.storage import LocalSource, SourceChangedError, SourceEntry, StorageError
from dataset_worker.storage.select import open_output, open_source
from dataset_worker.storage.sftp import SftpOutput
from tests.support.jobs import add_job, run_job, run_ready_jobs, write_files
from tests.support.sshd import SshServer
from tests.support.storages import StorageSpec, make_preparation, prepared, run_all

MIB = 1 << 20
TREE: dict[str, int | bytes] = {
    "big.bin": 3 * MIB + 77,
    "a-b": 1000,
    "a.txt": b"dot",
    "a/x.bin": 500_000,
    "a/empty.dat": b"",
    "b c/space.txt": b"space",
    "caf\u00e9/\u00e9t\u00e9.txt": b"summer",
}


def _shape(entries: list[SourceEntry]) -> list[tuple[str, bool, int, int]]:
    return [(e.path, e.is_dir, e.size, e.mtime_ns // 10**9) for e in entries]


def _folder(server: SshServer, name: str) -> Path:
    folder = server.home / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def test_listing_and_reads_match_the_local_folder(ssh_server: SshServer) -> None:
    folder = _folder(ssh_server, "listing")
    write_files(folder, TREE)
    os.symlink(folder / "a.txt", folder / "link")  # reported and skipped, as locally
    source = open_source("sftp", ssh_server.url(folder), ssh_server.config())
    errors: list[str] = []
    remote = list(source.walk(lambda path, exc: errors.append(path)))
    local = list(LocalSource(folder).walk(lambda path, exc: None))
    assert _shape(remote) == _shape(local)
    assert errors == ["link"]
    big = next(e for e in remote if e.path == "big.bin")
    data = (folder / "big.bin").read_bytes()
    for offset in (0, MIB + 3, len(data)):
        stream = source.open_range("big.bin", offset, size=big.size, mtime_ns=big.mtime_ns)
        buffer = memoryview(bytearray(256 * 1024))
        got = bytearray()
        while n := stream.readinto(buffer):
            got += buffer[:n]
        stream.close()
        assert bytes(got) == data[offset:]
    (folder / "big.bin").write_bytes(b"changed")
    with pytest.raises(SourceChangedError, match=r"source changed: sftp://.*/big.bin"):
        source.open_range("big.bin", 0, size=big.size, mtime_ns=big.mtime_ns)


def test_output_publishes_by_rename_and_recovers_leftovers(ssh_server: SshServer) -> None:
    folder = _folder(ssh_server, "output")
    output = open_output("sftp", ssh_server.url(folder), ssh_server.config())
    assert isinstance(output, SftpOutput)  # its temps have a name, which the listing shows
    temp = output.create_temp("pack3")
    temp.stream.write(b"car bytes")
    temp.pad_to(100)
    assert temp.size == 100
    assert temp.publish("piece.car") == "piece.car"
    temp.discard()
    assert (folder / "piece.car").read_bytes() == b"car bytes" + bytes(91)
    assert output.exists("piece.car") == 100
    killed = output.create_temp("pack3")  # a run killed mid-write: never discarded
    killed.stream.write(b"partial")
    other = output.create_temp("pack30")
    assert output.remove_temps("pack3") == 1
    assert sorted(p.name for p in folder.iterdir()) == [other.name, "piece.car"]
    other.discard()
    output.remove("piece.car")
    assert output.exists("piece.car") is None
    # OpenSSH answers statvfs@openssh.com: the loopback server's figures are the local ones.
    space = output.space()
    local = os.statvfs(folder)
    assert space.total == local.f_blocks * local.f_frsize
    assert space.free is not None and 0 < space.free <= space.total


def test_bad_config_is_refused(ssh_server: SshServer) -> None:
    with pytest.raises(StorageError, match='"password" holds a secret'):
        open_source("sftp", ssh_server.url("/x"), {"password": "pw"})
    with pytest.raises(StorageError, match="must look like sftp://"):
        open_source("sftp", "sftp:///nohost", {})
    unknown_host = dict(ssh_server.config(), known_hosts=str(ssh_server.home / "none"))
    source = open_source("sftp", ssh_server.url(ssh_server.home), unknown_host)
    with pytest.raises(Exception, match="not found in known_hosts"):
        list(source.walk(lambda path, exc: None))


def test_jobs_over_sftp_give_the_same_pieces(
    db: Database, tmp_path: Path, ssh_server: SshServer
) -> None:
    folder = _folder(ssh_server, f"jobs-{os.getpid()}-{id(db)}")
    write_files(folder / "src", TREE)
    (folder / "cars").mkdir()
    local_out = tmp_path / "local-out"
    local_out.mkdir()
    max_size = 2_000_000
    local = make_preparation(db, "local", StorageSpec("local", str(folder / "src")),
                             StorageSpec("local", str(local_out)), max_size=max_size)  # fmt: skip
    assert all(r.state is JobState.COMPLETE for r in run_all(db, local))
    remote = make_preparation(
        db,
        "remote",
        StorageSpec("sftp", ssh_server.url(folder / "src"), ssh_server.config()),
        StorageSpec("sftp", ssh_server.url(folder / "cars"), ssh_server.config()),
        max_size=max_size,
    )
    assert all(r.state is JobState.COMPLETE for r in run_all(db, remote))
    assert prepared(db, remote, folder=folder / "cars") == prepared(db, local, folder=local_out)
    assert not [p for p in (folder / "cars").iterdir() if p.name.startswith(".dw-")]

    changed = make_preparation(
        db,
        "changed",
        StorageSpec("sftp", ssh_server.url(folder / "src"), ssh_server.config()),
        StorageSpec("local", str(tmp_path / "out3")),
        max_size=max_size,
    )
    (tmp_path / "out3").mkdir()
    assert run_job(db, add_job(db, changed, JobType.SCAN)).state is JobState.COMPLETE
    (folder / "src" / "a.txt").write_bytes(b"new content")
    packs = run_ready_jobs(db, JobType.PACK, attachment_id=changed)
    assert any("source changed: sftp://" in str(p.error) for p in packs)


def test_a_read_survives_a_dropped_connection(ssh_server: SshServer) -> None:
    folder = _folder(ssh_server, "dropped")
    data = os.urandom(2 * MIB + 5)
    (folder / "f.bin").write_bytes(data)
    source = open_source("sftp", ssh_server.url(folder), ssh_server.config())
    [entry] = list(source.walk(lambda path, exc: None))
    stream = source.open_range("f.bin", 0, size=entry.size, mtime_ns=entry.mtime_ns)
    buffer = memoryview(bytearray(64 * 1024))
    got = bytearray(buffer[: stream.readinto(buffer)])
    source.conn.close()  # type: ignore[attr-defined]  # the server connection drops mid-read
    while n := stream.readinto(buffer):
        got += buffer[:n]
    stream.close()
    assert bytes(got) == data
