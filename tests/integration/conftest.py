"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api_support import AdminServer, running_server


@pytest.fixture
def admin_server(tmp_path: Path, database_url: str) -> Iterator[AdminServer]:
    """A real `dataset-worker serve` on a free loopback port, on the test's database."""
    yield from running_server(tmp_path, database_url)
