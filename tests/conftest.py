"""Shared fixtures. With DATASET_WORKER_REQUIRE_ALL_TESTS=1 (CI) nothing may skip for lack of a service."""

from __future__ import annotations

import os

import pytest

REQUIRE_ALL = os.environ.get("DATASET_WORKER_REQUIRE_ALL_TESTS") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip on a developer machine that lacks a service; fail in CI, where nothing may skip."""
    if REQUIRE_ALL:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
