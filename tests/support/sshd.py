"""A private OpenSSH server on a loopback port for the SFTP tests.

Debian's `openssh-server` runs as the current user (`sshd -D -f <config> -p <port>`) with a
generated host key and user key, key authentication only, and the internal SFTP server. The
storage under test gets the user key file and a known_hosts file holding the host key, so the
host key check is real.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshServer:
    """A running sshd: its port, user, key files and a folder the tests may use."""

    port: int
    user: str
    key_file: Path
    known_hosts: Path
    home: Path

    def url(self, path: Path | str) -> str:
        """`sftp://user@127.0.0.1:port/<absolute path>`."""
        return f"sftp://{self.user}@127.0.0.1:{self.port}{path}"

    def config(self, **extra: Any) -> dict[str, Any]:
        """A storage config using the test keys (paths, no secrets)."""
        return {"key_file": str(self.key_file), "known_hosts": str(self.known_hosts), **extra}


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _wait_banner(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on port {port} within the deadline")


@pytest.fixture(scope="session")
def ssh_server() -> Iterator[SshServer]:
    """sshd on a free loopback port, for the whole session."""
    from tests.conftest import skip_or_fail

    if not os.access(SSHD, os.X_OK) or shutil.which("ssh-keygen") is None:
        skip_or_fail("openssh-server is not installed (apt-get install openssh-server)")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    with tempfile.TemporaryDirectory(prefix="dw-sshd-") as tmp:
        root = Path(tmp)
        home = root / "files"
        home.mkdir()
        _keygen(root / "host_key")
        _keygen(root / "user_key")
        (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
        port = free_port()
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"HostKey {root / 'host_key'}",
                    f"PidFile {root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {root / 'authorized_keys'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    "Subsystem sftp internal-sftp",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        host_key = (root / "host_key.pub").read_text().split()
        known_hosts = root / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        with open(root / "sshd.log", "wb") as log:
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config), "-p", str(port)], stdout=log, stderr=log
            )
            try:
                _wait_banner(port, process, time.monotonic() + 30)
                yield SshServer(port, getpass.getuser(), root / "user_key", known_hosts, home)
            finally:
                from dataset_worker.storage.sftp import close_all

                close_all()
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
