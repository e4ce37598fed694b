from __future__ import annotations

import pytest

from dataset_worker.db.models import JobType
from dataset_worker.worker.runtime.config import InvalidWorkerConfig, WorkerConfig


def test_defaults_are_singularitys_flags() -> None:
    config = WorkerConfig().validate()
    assert config.concurrency == 1
    assert (config.min_interval, config.max_interval) == (5.0, 160.0)
    assert not config.exit_on_complete and not config.exit_on_error
    assert config.job_types == [JobType.DAGGEN, JobType.SCAN, JobType.PACK]
    assert config.max_attempts == 5
    assert config.retry_policy.max_attempts == 5


def test_default_recovery_window_is_within_30_seconds() -> None:
    # Worst case: the last heartbeat lands just before the kill; the job is released by the
    # first reaper pass (period = heartbeat interval) after the row turns stale.
    config = WorkerConfig()
    assert config.stale_after + config.heartbeat_interval <= 30


def test_priority_keeps_only_enabled_types_in_order() -> None:
    assert WorkerConfig(enable_dag=False).job_types == [JobType.SCAN, JobType.PACK]
    assert WorkerConfig(enable_scan=False).job_types == [JobType.DAGGEN, JobType.PACK]
    assert WorkerConfig(enable_scan=False, enable_dag=False).job_types == [JobType.PACK]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (WorkerConfig(concurrency=0), "--concurrency must be between 1 and 64, got 0"),
        (WorkerConfig(concurrency=65), "--concurrency must be between 1 and 64, got 65"),
        (
            WorkerConfig(enable_scan=False, enable_pack=False, enable_dag=False),
            "no job types enabled",
        ),
        (WorkerConfig(min_interval=0), "--min-interval must be a positive duration, got 0s"),
        (WorkerConfig(max_interval=-1), "--max-interval must be a positive duration, got -1s"),
        (
            WorkerConfig(min_interval=10, max_interval=5),
            "--min-interval (10s) must not be greater than --max-interval (5s)",
        ),
        (WorkerConfig(max_attempts=0), "--max-attempts must be between 1 and 100, got 0"),
        (WorkerConfig(max_attempts=101), "--max-attempts must be between 1 and 100, got 101"),
        (WorkerConfig(retry_base=0), "retry base delay must be a positive duration, got 0s"),
        (
            WorkerConfig(retry_base=10, retry_cap=5),
            "the retry base delay (10s) must not be greater than the retry delay cap (5s)",
        ),
        (
            WorkerConfig(heartbeat_interval=10, stale_after=15),
            "--stale-after (15s) must be at least twice --heartbeat-interval (10s)",
        ),
    ],
)
def test_invalid_settings_name_the_flag(config: WorkerConfig, message: str) -> None:
    with pytest.raises(InvalidWorkerConfig) as info:
        config.validate()
    assert message in str(info.value)
