from __future__ import annotations

import logging

from dataset_worker.logs import LogfmtFormatter


def test_logfmt_line_has_event_and_quoted_fields() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "job.claimed", (), None)
    record.job = 42
    record.path = "a b/c.txt"
    line = LogfmtFormatter().format(record)
    assert " INFO job.claimed job=42 path=\"a b/c.txt\"" in line
    assert line.endswith('"a b/c.txt"')
