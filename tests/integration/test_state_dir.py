"""Where the state lives: the default state dir is per user ($XDG_STATE_HOME/dataset-worker, else
~/.local/state/dataset-worker), never the working directory, and a "not found" names the
database it looked in (password hidden). Every command runs as a subprocess with HOME and
XDG_STATE_HOME inside the test's folder, so the real home is never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dataset_worker.config import ENV_ADMIN_TOKEN, ENV_DATABASE_URL, ENV_STATE_DIR

UNSET = (ENV_DATABASE_URL, ENV_STATE_DIR, ENV_ADMIN_TOKEN, "XDG_STATE_HOME", "HOME")


def _cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if key not in UNSET}
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "dataset_worker", *args],
        cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_default_state_dir_is_under_xdg_state_home(tmp_path: Path) -> None:
    xdg, home, work = tmp_path / "xdg", tmp_path / "home", tmp_path / "work"
    result = _cli(work, {"XDG_STATE_HOME": str(xdg), "HOME": str(home)}, "prep", "status", "nope")
    assert result.returncode == 1
    database = xdg / "dataset-worker" / "dataset-worker.db"
    assert database.is_file()
    assert not (work / ".dataset-worker").exists()  # not the working directory any more
    assert not (home / ".local").exists()
    # The error says where it looked: an operator who gave no --state-dir sees which database.
    assert 'preparation "nope" not found' in result.stderr
    assert f"looked in the database sqlite:///{database}" in result.stderr


def test_without_xdg_state_home_it_is_under_the_home(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    for xdg in ({}, {"XDG_STATE_HOME": "relative/state"}):  # a relative value is ignored (XDG)
        result = _cli(work, {"HOME": str(home), **xdg}, "prep", "list")
        assert result.returncode == 0, result.stderr
        assert (home / ".local" / "state" / "dataset-worker" / "dataset-worker.db").is_file()
        assert not (work / ".dataset-worker").exists()
        assert not (work / "relative").exists()


def test_an_explicit_state_dir_still_wins(tmp_path: Path) -> None:
    """`make run` passes --state-dir .dataset-worker: README's curl lines read its token there."""
    xdg, work = tmp_path / "xdg", tmp_path / "work"
    env = {"XDG_STATE_HOME": str(xdg), "HOME": str(tmp_path / "home")}
    assert _cli(work, env, "--state-dir", ".dataset-worker", "prep", "list").returncode == 0
    assert (work / ".dataset-worker" / "dataset-worker.db").is_file()
    assert _cli(work, {**env, ENV_STATE_DIR: str(tmp_path / "s")}, "prep", "list").returncode == 0
    assert (tmp_path / "s" / "dataset-worker.db").is_file()
    assert not xdg.exists()


def test_not_found_names_the_database_with_the_password_hidden(
    tmp_path: Path, database_url: str
) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    if database_url.startswith("postgresql"):
        # The test server trusts local connections: a password in the URL is accepted unused.
        scheme, rest = database_url.split("://", 1)
        user, host = rest.split("@", 1)
        database_url = f"{scheme}://{user}:hunter2@{host}"
    result = _cli(tmp_path / "work", env, "--database-url", database_url, "prep", "status", "x")
    assert result.returncode == 1, result.stderr
    assert 'preparation "x" not found (no preparation has that name)' in result.stderr
    assert "looked in the database " in result.stderr
    assert "hunter2" not in result.stderr
    if database_url.startswith("postgresql"):
        assert f"{user}:***@{host}" in result.stderr
    else:
        assert database_url in result.stderr
