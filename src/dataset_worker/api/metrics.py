"""Prometheus metrics, computed at scrape time from the manager and the database."""

from __future__ import annotations

import signal
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select

from dataset_worker.api.services import Services
from dataset_worker.db.models import Job, JobState, JobType, Preparation, SourceAttachment
from dataset_worker.prep import get_preparation_status
from dataset_worker.prep.errors import NotFound


class AdminCollector(Collector):
    """Worker up, uptime, starts and restarts, last exit code, jobs by type and state, bytes."""

    def __init__(self, app: Services) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        yield from self._worker()
        yield from self._jobs()
        yield from self._preparations()

    def _worker(self) -> Iterator[Metric]:
        status = self.app.manager.status()
        yield GaugeMetricFamily(
            "dataset_worker_worker_up", "1 while the worker process runs.", value=status.running
        )
        yield GaugeMetricFamily(
            "dataset_worker_worker_uptime_seconds",
            "Seconds since the running worker started (0 when none runs).",
            value=status.uptime_seconds or 0.0,
        )
        runs = status.run_id or 0
        yield CounterMetricFamily(
            "dataset_worker_worker_starts", "Worker runs started in this state dir.", value=runs
        )
        yield CounterMetricFamily(
            "dataset_worker_worker_restarts",
            "Worker runs started after a first one in this state dir.",
            value=max(runs - 1, 0),
        )
        last = status.last_run
        exit_code = GaugeMetricFamily(
            "dataset_worker_worker_last_exit_code",
            "Exit code of the last finished run (128+n when signal n ended it).",
        )
        if last is not None and last.end_time is not None:
            if last.exit_code is not None:
                exit_code.add_metric([], last.exit_code)
            elif last.signal is not None:
                exit_code.add_metric([], 128 + _signal_number(last.signal))
        yield exit_code

    def _jobs(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "dataset_worker_jobs", "Jobs by type and state.", labels=["type", "state"]
        )
        counts = {(t, s): 0 for t in JobType for s in JobState}
        with self.app.db.read() as session:
            for job_type, state, count in session.execute(
                select(Job.type, Job.state, func.count()).group_by(Job.type, Job.state)
            ):
                counts[(job_type, state)] = count
        for (job_type, state), count in counts.items():
            jobs.add_metric([job_type.value, state.value], count)
        yield jobs

    def _preparations(self) -> Iterator[Metric]:
        packed = GaugeMetricFamily(
            "dataset_worker_bytes_packed",
            "Bytes of file ranges packed into CAR files, per preparation.",
            labels=["preparation"],
        )
        scanned = GaugeMetricFamily(
            "dataset_worker_bytes_scanned",
            "Bytes of the files the scans recorded, per preparation.",
            labels=["preparation"],
        )
        with self.app.db.read() as session:
            ids = list(
                session.scalars(
                    select(Preparation.id)
                    .where(Preparation.id.in_(select(SourceAttachment.preparation_id)))
                    .order_by(Preparation.id)
                )
            )
        for prep_id in ids:
            try:
                status = get_preparation_status(self.app.db, prep_id)
            except NotFound:
                continue  # deleted since the list was read
            packed.add_metric([status.name], status.bytes_packed)
            scanned.add_metric([status.name], status.bytes_scanned)
        yield packed
        yield scanned


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals[name])
    except KeyError:
        digits = name.removeprefix("SIG")
        return int(digits) if digits.isdigit() else 0


def make_registry(app: Services) -> CollectorRegistry:
    """A registry holding only this server's collector (no process-global state)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AdminCollector(app))
    return registry
