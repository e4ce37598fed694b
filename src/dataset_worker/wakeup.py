"""Waking the idle workers of a state dir when work is queued (docs/operations.md#work-starts-when-it-is-queued).

Each worker process started with a state dir listens on a UNIX datagram socket of its own
(`WakeSocket`) and leaves a marker file named after it in `<state dir>/wake/`. Whoever queues
work (the admin server, `prep create`, the starts, `prep retry`, `prep rescan`) calls
`ring(state_dir)`: one tiny datagram to each socket named there, sent without blocking. The
sockets live in Linux's abstract namespace (no file, no 108-byte path limit, gone with the
process), so a marker whose socket refuses the datagram belongs to a worker that is gone and is
removed. Ringing never fails the caller: the worker's poll backoff stays as the safety net.

On PostgreSQL the workers also LISTEN for the notification a trigger sends whenever a job
becomes ready (worker/runtime/wakeup.py), which reaches workers on every machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from pathlib import Path

from dataset_worker.private import private_dir, private_file

WAKE_DIR = "wake"
MESSAGE = b"w"
_PREFIX = b"\0dataset-worker-wake-"  # abstract namespace: the leading NUL


def wake_dir(state_dir: Path) -> Path:
    """The folder of the wake markers of a state dir."""
    return state_dir / WAKE_DIR


def _address(token: str) -> bytes:
    return _PREFIX + token.encode("ascii")


def ring(state_dir: Path) -> int:
    """Wake every worker listening in `state_dir`; returns how many took the datagram."""
    try:
        markers = [entry for entry in os.scandir(wake_dir(state_dir)) if entry.is_file()]
    except OSError:
        return 0  # no worker ever listened here
    woken = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for marker in markers:
            try:
                sender.sendto(MESSAGE, _address(marker.name))
            except ConnectionRefusedError:
                # Nobody listens: its worker is gone. Remove the marker so the folder stays small.
                with contextlib.suppress(OSError):
                    os.unlink(marker.path)
            except BlockingIOError:
                woken += 1  # its queue is full of wake-ups already
            except (OSError, UnicodeEncodeError):
                continue  # never fail the caller over a wake-up
            else:
                woken += 1
    return woken


class WakeSocket:
    """The datagram socket one worker process listens on for wake-ups, and its marker."""

    def __init__(self, state_dir: Path) -> None:
        folder = wake_dir(state_dir)
        private_dir(folder)  # 0700 like the rest of the state dir (docs/security.md)
        token = f"{os.getpid()}-{secrets.token_hex(8)}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.bind(_address(token))
            self.marker = folder / token
            private_file(self.marker)
        except BaseException:
            self._sock.close()
            raise

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a wake-up; True if one (or several) arrived."""
        self._sock.settimeout(timeout)
        try:
            self._sock.recv(64)
        except TimeoutError:
            return False
        self._sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while self._sock.recv(64):  # one wake-up is enough: drain the others
                pass
        return True

    def interrupt(self) -> None:
        """End a `wait` in progress at once (its listener is stopping)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            with contextlib.suppress(OSError):
                sender.sendto(MESSAGE, self._sock.getsockname())

    def close(self) -> None:
        """Stop listening and remove the marker."""
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.marker)
