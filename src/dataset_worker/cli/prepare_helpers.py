"""Extra pack processes for `dataset-worker prepare --concurrency N` (N > 1).

Packing many small files is Python work per file, and threads of one process share one
interpreter lock: two pack threads of one process pack no faster than one. So for the pack phase
`prepare` runs one pack thread itself and starts N-1 helper processes of one pack thread each,
on the same database (the URL goes through the environment, never the command line). They are
ordinary worker processes (`WorkerProcess`, pack jobs only, exit on complete), so claiming,
heartbeats, retries and releasing on SIGINT/SIGTERM are the runtime's own. Their log lines go
to the prepare log file.

Run as `python -m dataset_worker.cli.prepare_helpers READ_AHEAD ATTACHMENT` (READ_AHEAD 1 or 0:
whether pack jobs read ahead, decided by `prepare` for all N processes together; ATTACHMENT: the
preparation's source attachment, the only one whose jobs it takes). It starts while the scan
runs and waits for the scan's pack jobs, woken through the state dir's wake socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from dataset_worker.config import ENV_DATABASE_URL, ENV_STATE_DIR, Settings

HELPER_STOP_SECONDS = 60.0  # a helper releases its job and exits well within this after SIGINT


def start_helpers(
    count: int, config: Settings, log_path: Path, read_ahead: bool, attachment_id: int
) -> list[subprocess.Popen[bytes]]:
    """Start `count` helper processes packing the attachment's jobs from `config`'s database."""
    env = {
        **os.environ,
        ENV_DATABASE_URL: config.database_url,
        ENV_STATE_DIR: str(config.state_dir),
    }
    command = [
        sys.executable,
        "-m",
        "dataset_worker.cli.prepare_helpers",
        str(int(read_ahead)),
        str(attachment_id),
    ]
    helpers = []
    with log_path.open("ab") as log:
        for _ in range(count):
            helpers.append(
                subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
            )
    return helpers


def wait_helpers(helpers: list[subprocess.Popen[bytes]]) -> None:
    """Wait for the helpers to run out of work; on Ctrl-C stop them and re-raise."""
    try:
        for helper in helpers:
            helper.wait()
    except KeyboardInterrupt:
        stop_helpers(helpers)
        raise


def stop_helpers(helpers: list[subprocess.Popen[bytes]]) -> None:
    """SIGINT the helpers still running (each puts its job back to ready) and wait for them;
    one that does not stop in time is killed (the reaper releases its job later)."""
    for helper in helpers:
        if helper.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                helper.send_signal(signal.SIGINT)
    for helper in helpers:
        try:
            helper.wait(timeout=HELPER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()


def main() -> int:
    """One pack thread until no pack job of the attachment is left (nor a scan of it running);
    the worker process's exit code."""
    from dataset_worker.config import load_settings
    from dataset_worker.db import open_database
    from dataset_worker.logs import setup_logging
    from dataset_worker.worker.runtime.config import WorkerConfig
    from dataset_worker.worker.runtime.process import WorkerProcess

    setup_logging("info")
    logging.getLogger(__name__).info("prepare helper started (pid %d)", os.getpid())
    settings = load_settings()
    db = open_database(settings.database_url, pool_size=6)
    try:
        config = WorkerConfig(
            concurrency=1,
            enable_scan=False,
            enable_pack=True,
            enable_dag=False,
            exit_on_complete=True,
            attachments=(int(sys.argv[2]),),  # never another preparation's jobs
        )
        process = WorkerProcess(db, config, state_dir=settings.state_dir)
        process.pack_read_ahead = sys.argv[1:2] == ["1"]
        return process.run()
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())
