"""The start body: CLI defaults for omitted fields, strict types, rules that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dataset_worker.manager.launchconfig import WorkerLaunchConfig


def test_omitted_fields_take_the_cli_defaults() -> None:
    config = WorkerLaunchConfig.model_validate({})
    assert config.as_json() == {
        "concurrency": 1,
        "enableScan": True,
        "enablePack": True,
        "enableDag": True,
        "exitOnComplete": False,
        "exitOnError": False,
        "minInterval": "5s",
        "maxInterval": "160s",
        "maxAttempts": 5,
    }
    assert config.to_args() == [
        "--concurrency", "1", "--enable-scan", "--enable-pack", "--enable-dag",
        "--min-interval", "5s", "--max-interval", "160s", "--max-attempts", "5",
    ]  # fmt: skip


def test_flags_follow_the_config() -> None:
    config = WorkerLaunchConfig.model_validate(
        {
            "concurrency": 4,
            "enablePack": False,
            "exitOnComplete": True,
            "exitOnError": True,
            "minInterval": "250ms",
            "maxInterval": "1m",
            "maxAttempts": 1,
        }
    )
    assert config.to_args() == [
        "--concurrency", "4", "--enable-scan", "--no-enable-pack", "--enable-dag",
        "--exit-on-complete", "--exit-on-error", "--min-interval", "250ms", "--max-interval", "1m",
        "--max-attempts", "1",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"concurrency": "2"}, "valid integer"),
        ({"concurrency": 0}, "concurrency must be between 1 and 64, got 0"),
        ({"concurrency": 65}, "concurrency must be between 1 and 64, got 65"),
        ({"concurrency": True}, "valid integer"),
        ({"enableScan": "true"}, "valid boolean"),
        ({"minInterval": "5"}, "minInterval is not a Go duration"),
        ({"maxInterval": "0s"}, 'maxInterval must be a positive duration, got "0s"'),
        ({"minInterval": "-1s"}, "minInterval must be a positive duration"),
        ({"minInterval": 5}, "valid string"),
        ({"minInterval": "1m", "maxInterval": "30s"}, "minInterval (1m0s) must not be greater"),
        (
            {"enableScan": False, "enablePack": False, "enableDag": False},
            "at least one of enableScan, enablePack, enableDag must be true",
        ),
        ({"maxAttempts": 0}, "maxAttempts must be between 1 and 100, got 0"),
        ({"maxAttempts": 101}, "maxAttempts must be between 1 and 100, got 101"),
        ({"maxAttempts": "3"}, "valid integer"),
        ({"enable_scan": False}, "Extra inputs are not permitted"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_values_are_refused_with_the_rule(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        WorkerLaunchConfig.model_validate(body)
    assert message in str(info.value)


def test_the_attempts_bounds_match_the_worker() -> None:
    from dataset_worker.manager import launchconfig
    from dataset_worker.worker.runtime import config, retry

    assert launchconfig.MAX_ATTEMPTS == config.MAX_ATTEMPTS
    assert launchconfig.DEFAULT_MAX_ATTEMPTS == retry.DEFAULT_MAX_ATTEMPTS
