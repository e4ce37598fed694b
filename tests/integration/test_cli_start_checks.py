"""What `serve`, `demo` and `run` check before they start, through the real command: a port in
use, a weak admin token, out-of-range durations, and where the token is printed."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_worker.config import ENV_ADMIN_TOKEN
from tests.integration.test_api_cli import env_without_token, run_until_ready
from tests.support.ports import free_port


def _command(state_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "dataset_worker", "--state-dir", str(state_dir), *args]


def _run(
    state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(state_dir, *args),
        env=env if env is not None else env_without_token(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_port_in_use_is_named_with_how_to_choose_another(tmp_path: Path, command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(tmp_path / "state", command, "--port", str(port))
    assert result.returncode == 1, result.stdout
    assert (
        f"error: cannot listen on 127.0.0.1:{port}: port {port} is already in use "
        f"(by another server or program); choose another port with --port {port + 1} "
        f"(or `make run PORT={port + 1}`)"
    ) in result.stderr
    assert "Errno" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "demo-source").exists()  # refused before any work


@pytest.mark.parametrize("token", ["s3cr3t", "x" * 15])
def test_an_admin_token_under_16_characters_is_refused(tmp_path: Path, token: str) -> None:
    env = {**env_without_token(), ENV_ADMIN_TOKEN: token}
    result = _run(tmp_path / "state", "serve", "--port", str(free_port()), env=env)
    assert result.returncode == 1
    assert (
        f"error: the admin token in {ENV_ADMIN_TOKEN} is too short: {len(token)} characters, "
        "at least 16 are needed"
    ) in result.stderr
    assert token not in result.stderr.replace(ENV_ADMIN_TOKEN, "")  # the secret is not echoed


def test_a_short_token_file_is_refused_too(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "admin-token").write_text("0123456789\n")
    result = _run(state, "serve", "--port", str(free_port()))
    assert result.returncode == 1
    assert (
        f"the admin token in {state / 'admin-token'} is too short: 10 characters" in result.stderr
    )


def test_a_16_character_token_is_enough(tmp_path: Path) -> None:
    env = {**env_without_token(), ENV_ADMIN_TOKEN: "x" * 16}
    port = free_port()
    server = subprocess.Popen(
        _command(tmp_path / "state", "serve", "--port", str(port), "--no-access-log"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in server.stdout or ():
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        assert server.poll() is None, "the server exited"
    finally:
        server.terminate()
        server.communicate(timeout=60)


def test_demo_shows_its_token_each_time_and_never_says_shown_once(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    first, _port = run_until_ready(state_dir, "demo")
    token = (state_dir / "admin-token").read_text().strip()
    assert f"admin token (new, kept in {state_dir / 'admin-token'}):\n  {token}\n" in first
    again, _port = run_until_ready(state_dir, "demo")
    assert f"admin token (from {state_dir / 'admin-token'}):\n  {token}\n" in again
    assert "shown once" not in first + again


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--min-interval", "100000000h"),
        ("--stale-after", "2562048h"),
        ("--heartbeat-interval", "3000000h"),
    ],
)
def test_run_refuses_durations_beyond_gos_range_naming_the_flag(
    tmp_path: Path, flag: str, value: str
) -> None:
    result = _run(tmp_path / "state", "run", flag, value, "--exit-on-complete")
    assert result.returncode == 2
    assert result.stderr.startswith(f'error: {flag}: invalid duration "{value}": out of range')
