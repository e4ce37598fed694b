"""Slow and oversized requests cannot hold the servers' connections: a real content provider
(short timeouts given on its command line) and a real admin server, attacked by bounded slow
clients over raw sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dataset_worker.db import open_database
from tests.integration.api_support import AdminServer
from tests.integration.provider_support import Provider, running_provider

GIVE_UP = 30.0  # the attack counts as holding the connection if it is still open after this


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    folder = tmp_path_factory.mktemp("slow-clients")
    url = f"sqlite:///{folder / 'provider.db'}"
    open_database(url).dispose()
    yield from running_provider(url, folder, "--header-timeout", "1", "--body-timeout", "1")


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP)
    return sock


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by GIVE_UP)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_connection_that_never_sends_is_closed(provider: Provider) -> None:
    with connect(provider.port) as sock:
        assert until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_a_half_sent_request_head_is_closed_with_408(provider: Provider) -> None:
    with connect(provider.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: unfinished
        assert until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_a_head_dripped_a_byte_at_a_time_is_cut(provider: Provider) -> None:
    """A bounded slowloris: one header byte every 50 ms, for at most GIVE_UP seconds."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    deadline = time.monotonic() + GIVE_UP
    with connect(provider.port) as sock:
        sock.settimeout(0.05)
        cut = False
        for byte in head:
            if time.monotonic() > deadline:
                break
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(65536) == b"":  # closed
                    cut = True
                    break
            except TimeoutError:
                continue  # nothing from the server yet: drip on (the pacing of the attack)
            except OSError:
                cut = True
                break
        assert cut, "the dripping client kept its connection"


def test_an_announced_body_never_sent_is_closed(provider: Provider) -> None:
    with connect(provider.port) as sock:
        sock.sendall(
            b"POST /piece/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n0123456789"
        )
        until_closed(sock)  # returns once the server closed it


def test_a_huge_request_head_is_431(provider: Provider) -> None:
    with connect(provider.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000)
        assert until_closed(sock).startswith(b"HTTP/1.1 431 ")
    # Ordinary requests are served as before.
    assert httpx.get(f"{provider.url}/healthz").status_code == 200


def test_the_admin_server_refuses_a_huge_head_and_closes_a_half_sent_one(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    del tmp_path
    port = int(admin_server.url.rsplit(":", 1)[1])
    with connect(port) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000)
        assert until_closed(sock).startswith(b"HTTP/1.1 431 ")
    with connect(port) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert until_closed(sock).startswith(b"HTTP/1.1 408 ")  # after the 10 s default
