from __future__ import annotations

import logging

import pytest

from dataset_worker.logs import LogfmtFormatter, log_event


def test_logfmt_line_has_event_and_quoted_fields() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "job.claimed", (), None)
    record.job = 42
    record.path = "a b/c.txt"
    line = LogfmtFormatter().format(record)
    assert ' INFO job.claimed job=42 path="a b/c.txt"' in line
    assert line.endswith('"a b/c.txt"')


def test_a_field_named_like_a_record_attribute_is_kept_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("dataset_worker.test")
    with caplog.at_level(logging.INFO):
        log_event(logger, "preparation.created", name="demo", id=1)
    line = LogfmtFormatter().format(caplog.records[-1])
    assert "preparation.created" in line and "name_=demo" in line and "id=1" in line
