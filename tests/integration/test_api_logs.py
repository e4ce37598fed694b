"""Worker logs over HTTP: tail, per-stream offsets with nextOffset, and Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from dataset_worker.manager.runrecord import WorkerPaths
from dataset_worker.manager.segments import list_segments
from tests.integration.api_support import (
    TOKEN,
    AdminServer,
    start_worker,
    wait_for_log,
)
from tests.support.wait import wait_until


def logs(client: httpx.Client, **params: Any) -> dict[str, Any]:
    reply = client.get("/api/dataset-worker/logs", params=params)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def read_events(client: httpx.Client, count: int, **kwargs: Any) -> list[dict[str, str]]:
    """The first `count` events of the log stream."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with client.stream("GET", "/api/dataset-worker/logs/stream", **kwargs) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line == "":
                if current:
                    events.append(current)
                    current = {}
                if len(events) >= count:
                    break
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                current[name] = value
    return events


def test_tail_offsets_and_streams(admin_server: AdminServer) -> None:
    client = admin_server.client()
    pid = start_worker(client)
    wait_for_log(client, "worker.idle")
    everything = logs(client)
    assert everything["pid"] == pid and everything["running"] is True
    with open(f"/proc/{pid}/environ", "rb") as environ:
        variables = environ.read().split(b"\0")
    assert b"PYTHONUNBUFFERED=1" in variables  # output reaches the logs line by line
    assert not any(TOKEN.encode() in v for v in variables)  # the admin token stays in the server
    assert everything["startOffset"] == {"stdout": 0, "stderr": 0}
    assert everything["nextOffset"]["stdout"] == len(everything["stdout"].encode())

    tail = logs(client, tail=1)
    assert tail["stdout"].count("\n") == 1 and everything["stdout"].startswith(
        everything["stdout"][: -len(tail["stdout"])]
    )
    only_out = logs(client, stream="stdout", tail=3)
    assert only_out["stderr"] == "" and set(only_out["nextOffset"]) == {"stdout"}

    # Follow mode: what offset reads return, chained by nextOffset, is the stream itself.
    first = logs(client, stream="stdout", offset=0, maxBytes=40)
    assert first["startOffset"]["stdout"] == 0 and len(first["stdout"].encode()) == 40
    followed = first["stdout"]
    offset = first["nextOffset"]["stdout"]
    wait_until(
        lambda: logs(client, stream="stdout", offset=offset)["stdout"].count("worker.idle") >= 2,
        30,
        "more output",
    )
    rest = logs(client, stream="stdout", offset=offset)
    assert rest["startOffset"]["stdout"] == offset
    followed += rest["stdout"]
    assert followed.startswith(everything["stdout"])
    beyond = logs(client, stream="stdout", offset=10**12)
    assert beyond["stdout"] == "" and beyond["nextOffset"]["stdout"] <= 10**12


def test_server_sent_events(admin_server: AdminServer) -> None:
    client = admin_server.client()
    pid = start_worker(client)
    wait_for_log(client, "worker.idle")
    # The worker keeps writing, so the stream's tail may start later than this one, never sooner.
    earlier_tail = logs(client, stream="stdout", tail=2)["startOffset"]["stdout"]
    events = read_events(client, 3, params={"tail": 2})
    assert events[0]["event"] == "run"
    assert json.loads(events[0]["data"]) == {"runId": 1, "pid": pid, "running": True}
    output = [e for e in events[1:] if e["event"] == "stdout"]
    assert output, events
    data = json.loads(output[0]["data"])
    assert 0 < earlier_tail <= data["offset"] < data["nextOffset"]
    whole = logs(client, stream="stdout", offset=0)["stdout"].encode()
    assert whole[data["offset"] - 1 : data["offset"]] == b"\n"  # the tail starts on a line
    run_id, stdout_offset, _stderr = output[0]["id"].split(":")
    assert (int(run_id), int(stdout_offset)) == (1, data["nextOffset"])

    # Resuming with Last-Event-ID continues exactly where the last event ended.
    resumed = read_events(client, 2, headers={"Last-Event-ID": output[0]["id"]})
    more = [json.loads(e["data"]) for e in resumed if e["event"] == "stdout"]
    assert more and more[0]["offset"] == data["nextOffset"]

    assert client.post("/api/dataset-worker/stop").status_code == 200
    final = read_events(client, 1)
    assert json.loads(final[0]["data"])["running"] is False


def test_server_sent_events_keep_characters_split_across_reads(admin_server: AdminServer) -> None:
    """A UTF-8 character whose bytes arrive in two reads reaches the client whole."""
    client = admin_server.client()
    start_worker(client)
    wait_for_log(client, "worker.idle")
    assert client.post("/api/dataset-worker/stop").status_code == 200
    # The run is over and its pump gone: the test is now the only writer of the stream.
    segment = list_segments(WorkerPaths(admin_server.state_dir).logs, "stdout")[-1].path
    end = logs(client, stream="stdout")["nextOffset"]["stdout"]
    writes = [b"caf\xc3", b"\xa9 party \xf0\x9f", b"\x8e\x89\n"]  # é and 🎉 split in two

    received: list[dict[str, str]] = []
    with client.stream(
        "GET", "/api/dataset-worker/logs/stream", params={"stream": "stdout", "tail": 0}
    ) as reply:
        assert reply.status_code == 200
        events = sse_events(reply)
        assert next(events)["event"] == "run"
        for data in writes:  # one write per poll: each is read on its own
            with segment.open("ab") as stream:
                stream.write(data)
            received.append(next(events))
    payloads = [json.loads(event["data"]) for event in received]
    assert "".join(p["text"] for p in payloads) == "café party 🎉\n"
    assert [p["text"] for p in payloads] == ["caf", "é party ", "🎉\n"]
    # Offsets count the bytes of the text sent: a held-back partial character is not yet in.
    assert [(p["offset"], p["nextOffset"]) for p in payloads] == [
        (end, end + 3),
        (end + 3, end + 3 + len("é party ".encode())),
        (end + 3 + len("é party ".encode()), end + len(b"".join(writes))),
    ]
    assert [int(e["id"].split(":")[1]) for e in received] == [p["nextOffset"] for p in payloads]

    # Resuming after the first event starts at the split character, so it arrives whole too.
    resumed = read_events(client, 2, headers={"Last-Event-ID": received[0]["id"]})
    assert [json.loads(e["data"])["text"] for e in resumed[1:]] == ["é party 🎉\n"]


def sse_events(reply: httpx.Response) -> Iterator[dict[str, str]]:
    """The events of an open Server-Sent Events reply, as they arrive."""
    current: dict[str, str] = {}
    for line in reply.iter_lines():
        if line == "":
            if current:
                yield current
                current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
