"""A real admin server for the API tests: `dataset-worker serve` in a subprocess on a free port,
talking to the real worker process on a real database (SQLite or PostgreSQL).

Import the `admin_server` fixture into a test module to use it. Teardown stops the worker and the
server and kills anything left, so no test leaks a process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dataset_worker.config import ENV_ADMIN_TOKEN, ENV_DATABASE_URL
from dataset_worker.manager.procinfo import is_alive, read_process
from dataset_worker.manager.runrecord import WorkerPaths, read_record
from tests.support.ports import free_port
from tests.support.wait import wait_answering, wait_until

TOKEN = "integration-test-token-0123456789"
START_TIMEOUT = 60.0
# Poll fast so tests see jobs move quickly; the worker's defaults (5s…160s) would make them slow.
FAST = {"minInterval": "100ms", "maxInterval": "500ms"}


@dataclass
class AdminServer:
    """One `dataset-worker serve` process."""

    state_dir: Path
    database_url: str
    port: int
    process: subprocess.Popen[bytes]
    output: Path
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=120.0)
        self.clients.append(client)
        return client

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def shutdown(self, signum: int = signal.SIGTERM) -> None:
        """Stop the server process (SIGKILL simulates a crash) and reap it."""
        for client in self.clients:
            client.close()
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    state_dir: Path,
    database_url: str,
    *,
    extra_args: tuple[str, ...] = (),
    url_in_env: bool = False,
) -> AdminServer:
    """Start a server on a free port and wait until /healthz answers.

    `url_in_env` passes the database URL in the environment instead of on the command line.
    """
    port = free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    output = state_dir.parent / f"server-{port}.log"
    env = {**os.environ, ENV_ADMIN_TOKEN: TOKEN}
    url_args = ["--database-url", database_url]
    if url_in_env:
        env[ENV_DATABASE_URL] = database_url
        url_args = []
    command = [
        sys.executable,
        "-m",
        "dataset_worker",
        "--state-dir",
        str(state_dir),
        *url_args,
        "serve",
        "--port",
        str(port),
        "--no-access-log",
        *extra_args,
    ]
    with output.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = AdminServer(state_dir, database_url, port, process, output)
    try:
        wait_answering(f"{server.url}/healthz", process, START_TIMEOUT, "server", log=server.log)
    except AssertionError:
        server.shutdown(signal.SIGKILL)
        raise
    return server


def kill_worker(state_dir: Path) -> None:
    """SIGKILL the worker's process group if it still runs (teardown safety net)."""
    record = read_record(WorkerPaths(state_dir).record)
    if record is not None and is_alive(record.identity):
        try:
            os.killpg(record.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_until(lambda: not is_alive(record.identity), 30, "the worker to die")


def worker_processes(state_dir: Path) -> list[int]:
    """Pids of live `dataset_worker … run` processes working on `state_dir`."""
    found = []
    marker = str(state_dir).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        info = read_process(int(name))
        if info is None or info.is_zombie:
            continue
        if b"dataset_worker" in argv and b"run" in argv and marker in argv:
            found.append(int(name))
    return found


def running_server(
    tmp_path: Path, database_url: str, *, url_in_env: bool = False
) -> Iterator[AdminServer]:
    """A running admin server on a fresh state dir and database; cleaned up afterwards.

    Each test module turns it into its fixture: `yield from running_server(tmp_path, url)`.
    """
    state_dir = tmp_path / "state"
    server = start_server(state_dir, database_url, url_in_env=url_in_env)
    servers = [server]
    try:
        yield server
    finally:
        try:
            if server.process.poll() is None:
                with httpx.Client(base_url=server.url, timeout=60) as client:
                    client.post(
                        "/api/dataset-worker/stop",
                        params={"timeout": 5},
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    )
        finally:
            for each in servers:
                each.shutdown()
            kill_worker(state_dir)


def start_worker(client: httpx.Client, **config: Any) -> int:
    """Start the worker with fast polling (plus `config`); returns its pid."""
    reply = client.post("/api/dataset-worker/start", json={**FAST, **config})
    assert reply.status_code == 200, reply.text
    pid: int = reply.json()["pid"]
    return pid


def wait_for_log(client: httpx.Client, text: str, timeout: float = 60.0) -> str:
    """Wait until the worker's stdout or stderr contains `text`; returns both."""

    def found() -> str | None:
        reply = client.get("/api/dataset-worker/logs")
        if reply.status_code != 200:
            return None
        body = reply.json()
        both: str = body["stdout"] + body["stderr"]
        return both if text in both else None

    result: str = wait_until(found, timeout, f"{text!r} in the worker's output")
    return result


def make_source(root: Path, files: dict[str, int]) -> Path:
    """A source folder with files of the given sizes (bytes vary with the name)."""
    root.mkdir(parents=True, exist_ok=True)
    for relative, size in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = relative.encode() * (size // max(len(relative), 1) + 1)
        path.write_bytes(seed[:size])
    return root


def create_preparation(
    client: httpx.Client, name: str, source: Path, output: Path, **fields: Any
) -> dict[str, Any]:
    reply = client.post(
        "/api/preparations",
        json={"name": name, "source": str(source), "output": str(output), **fields},
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def add_preparation(database_url: str, name: str, source: Path, output: Path, **fields: Any) -> int:
    """Create a preparation with the use-case itself (test setup that is not under test)."""
    from dataset_worker.db import open_database
    from dataset_worker.prep import CreatePreparationRequest
    from dataset_worker.prep import create_preparation as create

    db = open_database(database_url)
    try:
        request = CreatePreparationRequest.model_validate(
            {"name": name, "source": str(source), "output": str(output), **fields}
        )
        return create(db, request).id
    finally:
        db.dispose()
