"""Structured logs: one line per event, `time level event key=value …` (logfmt-style).

Every line carries an event name so it can be filtered (`grep event=job.complete`); values with
spaces or quotes are quoted. Workers write to stdout/stderr and the admin server captures them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


class LogfmtFormatter(logging.Formatter):
    """Format records as `2026-01-02T03:04:05.678Z INFO event key=value …`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"{stamp}.{int(record.msecs):03d}Z", record.levelname, record.getMessage()]
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                parts.append(f"{key}={_quote(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: Any) -> str:
    """A value as one logfmt token. Untrusted text (names, paths, error messages) can hold
    anything: control characters (a newline would forge a log line, an escape sequence would
    drive the terminal) are written as escapes, never raw."""
    text = str(value)
    if text == "" or any(c in text for c in ' "=\\') or not text.isprintable():
        return '"' + "".join(_ESCAPES.get(c) or _escape_control(c) for c in text) + '"'
    return text


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_control(c: str) -> str:
    # isprintable() is False for control and separator characters (other than the space).
    return c if c.isprintable() or c == " " else f"\\u{ord(c):04x}"


def setup_logging(level: str = "INFO") -> None:
    """INFO and DEBUG go to stdout, WARNING and above to stderr, both as logfmt lines."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level.upper())
    formatter = LogfmtFormatter()
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(lambda r: r.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(formatter)
        root.addHandler(handler)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with fields: log_event(log, "job.claimed", job=42, type="pack").

    A field named like a LogRecord attribute ("name", "msg", …) would make logging raise, so it
    is written with a trailing underscore instead ("name_=…").
    """
    safe = {
        (f"{k}_" if k in _RESERVED or k in ("message", "asctime") else k): v
        for k, v in fields.items()
    }
    logger.log(level, event, extra=safe, stacklevel=2)
