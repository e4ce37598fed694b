"""Settings of one `dataset-worker run` process, validated in one place (CLI and API alike)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from dataset_worker.db.models import JobType
from dataset_worker.defaults import DEFAULT_STALE_AFTER
from dataset_worker.durations import format_duration
from dataset_worker.worker.runtime.retry import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_BASE,
    DEFAULT_RETRY_CAP,
    RetryPolicy,
)

MAX_CONCURRENCY = 64
MAX_ATTEMPTS = 100


class InvalidWorkerConfig(ValueError):
    """A worker setting breaks a rule; the message names the flag and the rule."""


@dataclass(frozen=True)
class WorkerConfig:
    """Flags of `dataset-worker run` (docs/architecture.md#worker-process), durations in seconds.

    Defaults: one thread, every job type, poll backoff 5s…160s. `heartbeat_interval` 5s and
    `stale_after` 20s make a killed worker's jobs claimable again within ~25 s (reaper period =
    heartbeat interval), where Singularity needs up to ~10 min. A job failing transiently gets
    `max_attempts` attempts in all, `retry_base`…`retry_cap` apart (see retry.py).
    """

    concurrency: int = 1
    enable_scan: bool = True
    enable_pack: bool = True
    enable_dag: bool = True
    exit_on_complete: bool = False
    exit_on_error: bool = False
    min_interval: float = 5.0
    max_interval: float = 160.0
    heartbeat_interval: float = 5.0
    stale_after: float = DEFAULT_STALE_AFTER
    monitor_interval: float = 1.0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_base: float = DEFAULT_RETRY_BASE
    retry_cap: float = DEFAULT_RETRY_CAP
    # Source attachments whose jobs this worker claims (`run --prep`, `prepare`); empty: all.
    attachments: tuple[int, ...] = ()

    @property
    def retry_policy(self) -> RetryPolicy:
        """The attempts budget and backoff of failed jobs."""
        return RetryPolicy(self.max_attempts, self.retry_base, self.retry_cap)

    @property
    def job_types(self) -> list[JobType]:
        """Enabled job types in claim priority order: daggen, then scan, then pack (docs/architecture.md#worker-thread-loop)."""
        order = (
            (self.enable_dag, JobType.DAGGEN),
            (self.enable_scan, JobType.SCAN),
            (self.enable_pack, JobType.PACK),
        )
        return [job_type for enabled, job_type in order if enabled]

    def validate(self) -> WorkerConfig:
        """Return self, or raise InvalidWorkerConfig naming the flag and the rule."""
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise InvalidWorkerConfig(
                f"--concurrency must be between 1 and {MAX_CONCURRENCY}, got {self.concurrency}"
            )
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise InvalidWorkerConfig(
                f"--max-attempts must be between 1 and {MAX_ATTEMPTS}, got {self.max_attempts}"
            )
        if not self.job_types:
            raise InvalidWorkerConfig(
                "no job types enabled: keep at least one of --enable-scan, --enable-pack, --enable-dag"
            )
        for flag, value in (
            ("--min-interval", self.min_interval),
            ("--max-interval", self.max_interval),
            ("--heartbeat-interval", self.heartbeat_interval),
            ("--stale-after", self.stale_after),
            ("retry base delay", self.retry_base),
            ("retry delay cap", self.retry_cap),
        ):
            if value <= 0:
                raise InvalidWorkerConfig(
                    f"{flag} must be a positive duration, got {format_duration(value)}"
                )
        if self.min_interval > self.max_interval:
            raise InvalidWorkerConfig(
                f"--min-interval ({format_duration(self.min_interval)}) must not be greater than "
                f"--max-interval ({format_duration(self.max_interval)})"
            )
        if self.retry_base > self.retry_cap:
            raise InvalidWorkerConfig(
                f"the retry base delay ({format_duration(self.retry_base)}) must not be greater "
                f"than the retry delay cap ({format_duration(self.retry_cap)})"
            )
        if self.stale_after < 2 * self.heartbeat_interval:
            raise InvalidWorkerConfig(
                f"--stale-after ({format_duration(self.stale_after)}) must be at least twice "
                f"--heartbeat-interval ({format_duration(self.heartbeat_interval)}), "
                "so that one late heartbeat does not make a live worker look dead"
            )
        return self


# How a worker process tunes its pack jobs to the machine: chunk read-ahead on or off.
#
# A pack job's read-ahead thread reads and hashes the next chunks while the job thread writes the
# CAR and computes commP: one job then keeps ~1.4 cores busy. When the process runs as many pack
# jobs at once as it has cores, that extra thread only adds contention (measured on 2 cores:
# 2 jobs gave 546 MB/s in all without read-ahead, 504-587 MB/s with it). So read-ahead stays on
# only while the pack jobs leave a core idle.


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API on this platform
        return max(1, os.cpu_count() or 1)


def choose_read_ahead(pack_concurrency: int, cpus: int | None = None) -> bool:
    """Read ahead when fewer pack jobs may run at once than there are usable CPUs.

    `cpus` defaults to `usable_cpus()`.
    """
    available = usable_cpus() if cpus is None else cpus
    return pack_concurrency < available
