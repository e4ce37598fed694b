"""`dataset-worker serve` and `demo` from the command line: the admin token, the bind check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dataset_worker.config import ENV_ADMIN_TOKEN
from tests.support.ports import free_port
from tests.support.wait import wait_answering


def command(state_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "dataset_worker", "--state-dir", str(state_dir), *args]


def env_without_token() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != ENV_ADMIN_TOKEN}


def run_until_ready(state_dir: Path, *args: str) -> tuple[str, int]:
    """Start the server, wait until it answers, stop it; returns its stdout and its port."""
    port = free_port()
    server = subprocess.Popen(
        command(state_dir, *args, "--port", str(port), "--no-access-log"),
        env=env_without_token(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_answering(f"http://127.0.0.1:{port}/healthz", server, 60)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=60)
    return output.decode(), port


def test_a_generated_token_is_saved_privately_and_printed_once(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    first, _port = run_until_ready(state_dir, "serve")
    token_file = state_dir / "admin-token"
    token = token_file.read_text().strip()
    assert len(token) >= 40
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert "shown once" in first and token in first
    second, _port = run_until_ready(state_dir, "serve")
    assert token not in second  # printed once: only when it was generated
    assert token_file.read_text().strip() == token


def test_a_non_loopback_bind_needs_a_configured_token(tmp_path: Path) -> None:
    refused = subprocess.run(
        command(tmp_path / "state", "serve", "--host", "0.0.0.0", "--port", str(free_port())),
        env=env_without_token(),
        capture_output=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert b"refusing to bind 0.0.0.0" in refused.stderr
    assert ENV_ADMIN_TOKEN.encode() in refused.stderr
    assert not (tmp_path / "state" / "admin-token").exists()


def test_demo_prints_the_url_and_token_and_creates_the_demo_preparation(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    output, port = run_until_ready(state_dir, "demo")
    token = (state_dir / "admin-token").read_text().strip()
    assert f"http://127.0.0.1:{port}/" in output and token in output
    assert (state_dir / "demo-source").is_dir()
    again, _port = run_until_ready(state_dir, "demo")
    assert token in again  # the development server shows it every time


def test_serve_creates_a_missing_state_dir_when_the_token_comes_from_the_environment(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "new" / "state"
    port = free_port()
    server = subprocess.Popen(
        command(state_dir, "serve", "--port", str(port), "--no-access-log"),
        env={**env_without_token(), ENV_ADMIN_TOKEN: "t" * 40},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        reply = wait_answering(
            f"http://127.0.0.1:{port}/api/dataset-worker/status",
            server,
            60,
            headers={"Authorization": "Bearer " + "t" * 40},
            ok=lambda _reply: True,  # whatever it says: checked below
        )
        assert reply.status_code == 200 and reply.json()["running"] is False
        assert state_dir.is_dir()
    finally:
        server.terminate()
        server.communicate(timeout=60)
