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


def test_untrusted_text_cannot_forge_lines_or_drive_the_terminal() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "scan.file", (), None)
    record.path = "a\nINFO job.complete job=1\r\x1b[31mred\x07"
    record.name_ = 'x"y\\z'
    record.plain = "ünïcødé/ok"
    line = LogfmtFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x07" not in line
    assert r'path="a\nINFO job.complete job=1\r\u001b[31mred\u0007"' in line
    assert r'name_="x\"y\\z"' in line
    assert line.endswith("plain=ünïcødé/ok")
