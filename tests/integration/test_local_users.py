"""What another user of the same host can read: the state folder, the SQLite database (with its
-wal and -shm files) and the logs are private whatever the umask, and a token-less content
provider says that it serves everyone on the host.

The attacks as another user run under `nobody` (setpriv) when the tests run as root, and skip
otherwise.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dataset_worker.db import open_database
from tests.integration.provider_support import start_provider
from tests.support.jobs import write_files

SECRET_TREE: dict[str, int | bytes] = {"private/root-only.txt": b"only root may read this\n"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_with_umask(umask: int, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`dataset-worker ARGS` in a process whose umask lets every file be world-readable."""
    return subprocess.run(
        [sys.executable, "-m", "dataset_worker", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(umask),  # the point of the test
    )


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder other users can traverse (pytest's own tmp folders are 0700): the state folder
    inside it is what must keep them out."""
    folder = Path(tempfile.mkdtemp(prefix="dw-shared-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_state_folder_database_and_logs_are_private_whatever_the_umask(
    shared_folder: Path, umask: int
) -> None:
    source = shared_folder / "source"
    write_files(source, SECRET_TREE)
    state = shared_folder / "state"
    result = run_with_umask(
        umask, "--state-dir", str(state), "prepare", str(source), "--name", "secret",
        cwd=shared_folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert mode(state) == 0o700
    database = state / "dataset-worker.db"
    # prepare's CAR files default to <state>/cars/<name>: outputs, not state, whose modes are
    # the umask's; the 0700 state folder already keeps other users out of them.
    entries = [path for path in state.rglob("*") if "cars" not in path.relative_to(state).parts]
    files = [path for path in entries if path.is_file()]
    assert database in files
    assert any(path.suffix == ".log" for path in files), files
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
    assert all(mode(path) == 0o700 for path in entries if path.is_dir())


def test_wal_and_shm_files_are_private_while_the_database_is_open(tmp_path: Path) -> None:
    database = tmp_path / "open.db"
    previous = os.umask(0)
    try:
        db = open_database(f"sqlite:///{database}")
        try:
            with db.write() as session:
                session.execute(text("CREATE TABLE IF NOT EXISTS probe (secret TEXT)"))
                session.execute(text("INSERT INTO probe VALUES ('s3 secret key')"))
            companions = [database.with_name("open.db-wal"), database.with_name("open.db-shm")]
            assert all(path.exists() for path in companions)
            assert [mode(path) for path in [database, *companions]] == [0o600] * 3
        finally:
            db.dispose()
    finally:
        os.umask(previous)


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    open_database(f"sqlite:///{database}").dispose()
    database.chmod(0o644)  # as an older version left it
    open_database(f"sqlite:///{database}").dispose()
    assert mode(database) == 0o600


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("attacking as another user needs root (to become nobody) and setpriv")
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_another_user_cannot_read_the_database_or_the_logs(shared_folder: Path) -> None:
    source = shared_folder / "source"
    write_files(source, SECRET_TREE)
    state = shared_folder / "state"
    result = run_with_umask(
        0o022, "--state-dir", str(state), "prepare", str(source), "--name", "secret",
        cwd=shared_folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # The attacker looks for the file's CID in the database, then asks the provider for it.
    stolen = as_nobody("cat", str(state / "dataset-worker.db"))
    assert stolen.returncode != 0 and "Permission denied" in stolen.stderr, stolen
    listing = as_nobody("ls", str(state))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr, listing


def test_a_token_less_provider_warns_that_every_local_user_can_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'provider.db'}"
    open_database(url).dispose()
    provider = start_provider(url, tmp_path)
    try:
        assert "warning: no token: every user of this host (loopback included)" in provider.log()
    finally:
        provider.stop()
    token = tmp_path / "token"
    token.write_text("a-long-enough-provider-token\n")
    guarded = start_provider(url, tmp_path, "--token-file", str(token))
    try:
        log = guarded.log()
    finally:
        guarded.stop()
    assert "content provider: http://127.0.0.1" in log
    assert "warning: no token" not in log
