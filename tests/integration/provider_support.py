"""Helpers for the content-provider tests: a prepared tree and a real provider process.

`prepare_tree` runs the real scan, pack and daggen job bodies in process over a generated tree
(nested folders, empty files, an empty folder, unicode names, and a file split across pieces by a
small max size), on a no-inline preparation. `start_provider` runs `dataset-worker
content-provider` as a subprocess on a free loopback port and waits until it answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database, open_database
from dataset_worker.db.models import Car, Directory, JobState, JobType
from tests.conftest import _truncate_all
from tests.support.jobs import add_job, make_local_preparation, run_job, scan_and_pack, write_files
from tests.support.ports import free_port
from tests.support.wait import wait_answering

START_TIMEOUT = 60.0
MAX_SIZE = 1_000_000  # split size 256 KiB, and pack jobs of under 1 MB: big.bin spans pieces
TREE: dict[str, int | bytes] = {
    "a.txt": 100,
    "empty.bin": b"",
    "big.bin": 2_600_000,
    "dir1/nested/deep/file.dat": 5000,
    "dir1/ünïcødé 文件.txt": 1234,
    "dir1/Space Name.bin": 77,
    "sub/emptyfile": b"",
}
EMPTY_FOLDERS = ("dir1/empty-folder", "only/empty/chain")


@dataclass(frozen=True)
class Piece:
    """A piece as recorded, with its CAR file."""

    cid: str
    piece_type: str
    piece_size: int
    file_size: int
    path: Path
    created_at: datetime


@dataclass(frozen=True)
class PreparedTree:
    """The generated source tree, the output folder and what the jobs recorded."""

    source: Path
    output: Path
    root_cid: str
    pieces: list[Piece]

    def piece(self, piece_type: str = "data") -> Piece:
        """The largest piece of a type."""
        return max(
            (p for p in self.pieces if p.piece_type == piece_type), key=lambda p: p.file_size
        )


def fresh_database_url(database: str, request: pytest.FixtureRequest, folder: Path) -> str:
    """An empty migrated database for a module-scoped fixture: "sqlite" (a file in `folder`) or
    "postgres" (the test run's database, emptied)."""
    if database == "sqlite":
        url = f"sqlite:///{folder / 'provider.db'}"
        open_database(url).dispose()
        return url
    postgres_url: str = request.getfixturevalue("postgres_url")
    _truncate_all(postgres_url)
    return postgres_url


def prepare_tree(database_url: str, folder: Path) -> PreparedTree:
    """Generate, scan, pack and build the DAG of the test tree; returns what was recorded."""
    source, output = folder / "source", folder / "output"
    write_files(source, TREE)
    for empty in EMPTY_FOLDERS:
        (source / empty).mkdir(parents=True)
    db = Database(database_url)
    try:
        rows = make_local_preparation(
            db, "served", source, output, max_size=MAX_SIZE, no_inline=True
        )
        packs = scan_and_pack(db, rows.attachment_id)
        assert [run.state for run in packs] == [JobState.COMPLETE] * len(packs)
        daggen = run_job(db, add_job(db, rows.attachment_id, JobType.DAGGEN))
        assert daggen.state is JobState.COMPLETE, daggen.error
        with db.read() as session:
            root = session.scalar(
                select(Directory.cid).where(Directory.id == rows.root_directory_id)
            )
            cars = session.scalars(select(Car).order_by(Car.id)).all()
            pieces = [
                Piece(
                    cid_to_str(car.piece_cid),
                    str(car.piece_type),
                    car.piece_size,
                    car.file_size,
                    output / car.storage_path,
                    car.created_at,
                )
                for car in cars
            ]
    finally:
        db.dispose()
    assert root is not None
    return PreparedTree(source, output, cid_to_str(root), pieces)


@dataclass
class Provider:
    """One `dataset-worker content-provider` process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def provider_command(*args: str) -> list[str]:
    """The provider's command line (the database URL goes in the environment)."""
    return [sys.executable, "-m", "dataset_worker", "content-provider", *args]


def start_provider(database_url: str, folder: Path, *args: str) -> Provider:
    """Start the provider on a free loopback port and wait for /healthz."""
    port = free_port()
    log_path = folder / f"provider-{port}.log"
    env = {**os.environ, "DATASET_WORKER_DATABASE_URL": database_url}
    command = provider_command("--port", str(port), *args)
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    provider = Provider(process, port, log_path)
    try:
        wait_answering(
            f"{provider.url}/healthz", process, START_TIMEOUT, "provider", log=provider.log
        )
    except AssertionError:
        provider.stop()
        raise
    return provider


def running_provider(database_url: str, folder: Path, *args: str) -> Iterator[Provider]:
    """A provider for a fixture: yields it, stops it afterwards."""
    provider = start_provider(database_url, folder, *args)
    try:
        yield provider
    finally:
        provider.stop()


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, with its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def tree_folders(root: Path) -> set[str]:
    """Every folder under `root` by relative path."""
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_dir()}


def folders_with_files(root: Path) -> set[str]:
    """Folders that hold at least one file somewhere below: the ones a UnixFS DAG records."""
    found: set[str] = set()
    for path in root.rglob("*"):
        if path.is_file():
            parent = path.parent
            while parent != root:
                found.add(parent.relative_to(root).as_posix())
                parent = parent.parent
    return found
