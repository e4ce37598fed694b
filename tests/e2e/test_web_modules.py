"""The page's pure JavaScript helpers, run in Chromium: SSE parsing, log chunks, field errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import Server

pytestmark = pytest.mark.browser


def run(page: Page, server: Server, module: str, body: str) -> Any:
    """Import one of the page's modules and evaluate `body` (an expression using `m`)."""
    if not page.url.startswith(server.url):
        page.goto(server.url + "/")
    return page.evaluate(f"async () => {{ const m = await import('/{module}'); return {body}; }}")


def test_event_stream_parser_handles_chunks_split_anywhere(page: Page, server: Server) -> None:
    stream = (
        ": keep-alive\r\n\r\n"
        'event: stdout\r\nid: 1:10:0\r\ndata: {"text":"a\\n"}\r\n\r\n'
        "event: run\ndata: line one\ndata: line two\n\n"
        "data: no type, id kept\r\r\n"
    )
    events = run(
        page,
        server,
        "client.js",
        f"""(() => {{
            const text = {json.dumps(stream)};
            const results = [];
            for (const size of [1, 2, 3, 7, text.length]) {{
                const seen = [];
                const parser = new m.EventStreamParser((e) => seen.push(e));
                for (let i = 0; i < text.length; i += size) parser.feed(text.slice(i, i + size));
                results.push(seen);
            }}
            return results;
        }})()""",
    )
    expected = [
        {"event": "stdout", "data": '{"text":"a\\n"}', "id": "1:10:0"},
        {"event": "run", "data": "line one\nline two", "id": "1:10:0"},
        {"event": "message", "data": "no type, id kept", "id": "1:10:0"},
    ]
    assert events == [expected] * 5


def test_log_chunks_are_cut_into_whole_lines(page: Page, server: Server) -> None:
    result = run(
        page,
        server,
        "logs.js",
        """(() => {
            const [first, carry] = m.splitChunk("", "one\\ntw");
            const [second, rest] = m.splitChunk(carry, "o\\r\\nthree\\n");
            return [first, carry, second, rest];
        })()""",
    )
    assert result == [["one"], "tw", ["two", "three"], ""]


@pytest.mark.parametrize(
    ("error", "field"),
    [
        # The API's validation errors carry the field in detail[].field.
        (
            {"message": "concurrency must be an integer", "detail": [{"field": "concurrency"}]},
            "concurrency",
        ),
        # Rules across fields have no field: the first one the sentence names.
        (
            {
                "message": "minInterval (5s) must not be greater than maxInterval (1s)",
                "detail": [{"field": None}],
            },
            "minInterval",
        ),
        ({"message": "minPieceSize 4 must not be larger than pieceSize 2"}, "minPieceSize"),
        ({"message": "Worker already running"}, None),
    ],
)
def test_an_error_is_matched_to_its_field(
    page: Page, server: Server, error: dict[str, Any], field: str | None
) -> None:
    names = ["concurrency", "minInterval", "maxInterval", "pieceSize", "minPieceSize"]
    found = run(
        page, server, "fields.js", f"m.fieldOfError({json.dumps(error)}, {json.dumps(names)})"
    )
    assert found == field


def test_formats(page: Page, server: Server) -> None:
    result = run(
        page,
        server,
        "format.js",
        """[
            m.parseGoDuration("2m30s"), m.parseGoDuration("1.5h"), m.parseGoDuration("250ms"),
            m.parseGoDuration("5x"), m.formatUptime(3725), m.formatUptime(59.9),
            m.formatBytes(1048576), m.formatBytes(1500), m.formatBytes(0), m.formatTook(0.0312),
        ]""",
    )
    assert result == [150, 5400, 0.25, None, "1h2m5s", "59s", "1 MiB", "1.46 KiB", "0 B", "0.03s"]


def test_exit_descriptions(page: Page, server: Server) -> None:
    result = run(
        page,
        server,
        "worker.js",
        """[
            m.describeExit({exitCode: 0, signal: null}),
            m.describeExit({exitCode: 130, signal: null}),
            m.describeExit({exitCode: null, signal: "SIGKILL"}),
        ]""",
    )
    assert result == ["exit code 0 (finished)", "exit code 130 (interrupted)", "killed by SIGKILL"]
