"""The progress of `dataset-worker prepare`, read from the database while the worker runs.

A background thread polls the preparation's status every POLL_SECONDS: bytes packed of bytes
scanned, the packing rate over the last RATE_WINDOW seconds, the time left at that rate, and the
pieces so far. On a terminal it redraws a rich live view; otherwise (a pipe, a log file) it
prints one plain line per phase change and then every LINE_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from types import TracebackType
from typing import Self

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

from dataset_worker.cli.common import counted
from dataset_worker.db import Database
from dataset_worker.prep import PreparationStatus, get_preparation_status
from dataset_worker.sizes import format_size

POLL_SECONDS = 1.0
LINE_SECONDS = 5.0
RATE_WINDOW = 10.0

log = logging.getLogger(__name__)


def format_eta(seconds: float | None) -> str:
    """`1:02:03`, `4:05` or `-` when unknown."""
    if seconds is None:
        return "-"
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(bytes_per_second: float | None) -> str:
    """`123.4 MB/s` (10^6 bytes), or `-` when unknown."""
    return "-" if bytes_per_second is None else f"{bytes_per_second / 1e6:.1f} MB/s"


class RateMeter:
    """Bytes per second over the last `window` seconds of samples."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, when: float, total: int) -> None:
        """Record the running total at time `when` (monotonic seconds)."""
        self._samples.append((when, total))
        while len(self._samples) > 2 and when - self._samples[0][0] > self.window:
            self._samples.popleft()

    @property
    def rate(self) -> float | None:
        """Bytes per second, or None before two samples half a second apart."""
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 >= 0.5 else None


class ProgressReporter:
    """Polls the status of one preparation and shows it; a context manager (thread inside)."""

    def __init__(self, db: Database, prep: str, console: Console) -> None:
        self.db = db
        self.prep = prep
        self.console = console
        self.phase = "starting"
        self.meter = RateMeter()
        self.status: PreparationStatus | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="prepare-progress", daemon=True)
        self._live: Live | None = None
        self._last_line = 0.0
        self._printed = ""
        self._printed_phase = ""  # the phase of the last plain line

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, auto_refresh=False)
            self._live.start()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()  # the final figures
        # A plain line per phase: the last phase (done, failed, interrupted) was printed when it
        # was set; printing it again with a newer rate would only repeat it.
        if self._live is not None or self._printed_phase != self.phase:
            self._show(force=True)
        if self._live is not None:
            self._live.stop()

    def set_phase(self, phase: str) -> None:
        """Name what runs now (scan, pack, daggen …); shown at once."""
        self.phase = phase
        self._poll()
        self._show(force=True)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._poll()
            self._show(force=False)

    def _poll(self) -> None:
        try:
            status = get_preparation_status(self.db, self.prep)
        except Exception as exc:  # a busy database must not stop the run; the next poll retries
            log.debug("progress poll failed: %s", exc)
            return
        self.status = status
        self.meter.add(time.monotonic(), status.bytes_packed)

    def _show(self, *, force: bool) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            return
        now, line = time.monotonic(), self.line()
        if line != self._printed and (force or now - self._last_line >= LINE_SECONDS):
            self._last_line, self._printed, self._printed_phase = now, line, self.phase
            self.console.print(line, markup=False, highlight=False)

    def eta(self) -> float | None:
        """Seconds left at the current rate, once the scan is done (the total is known)."""
        status, rate = self.status, self.meter.rate
        if status is None or not rate or rate <= 0 or self.phase.startswith("scan"):
            return None
        return max(status.bytes_scanned - status.bytes_packed, 0) / rate

    def line(self) -> str:
        """The plain-text progress line."""
        status = self.status
        if status is None:
            return f"{self.phase}"
        done, total = status.bytes_packed, status.bytes_scanned
        percent = f" ({done * 100 / total:.0f}%)" if total else ""
        return (
            f"{self.phase}: packed {format_size(done)} of {format_size(total)}{percent}, "
            f"{format_rate(self.meter.rate)}, ETA {format_eta(self.eta())}, "
            f"{counted(status.files_scanned, 'file')}, {counted(status.pieces, 'piece')}"
        )

    def _render(self) -> RenderableType:
        grid = Table.grid(padding=(0, 2))
        grid.add_row(f'[bold]Preparing "{escape(self.prep)}"[/bold]', escape(self.phase))
        status = self.status
        if status is None:
            return grid
        done, total = status.bytes_packed, status.bytes_scanned
        bar = ProgressBar(total=max(total, 1), completed=done if total else 0, width=40)
        grid.add_row("packed", bar, f"{format_size(done)} / {format_size(total)}")
        grid.add_row("rate", format_rate(self.meter.rate), f"ETA {format_eta(self.eta())}")
        grid.add_row("files", str(status.files_scanned), counted(status.pieces, "piece"))
        return grid
