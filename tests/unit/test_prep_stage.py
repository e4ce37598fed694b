"""A preparation's stage, from the counts of its jobs per type and state."""

from __future__ import annotations

import pytest

from dataset_worker.db.models import JobState, JobType
from dataset_worker.prep.status import JobCounts, pipeline_stage

C, R, P, Z, D, E = "created", "ready", "processing", "paused", "complete", "error"


def counts(**jobs: str) -> JobCounts:
    """counts(scan="complete", pack="complete complete ready") -> the job counts."""
    result = {job_type: dict.fromkeys(JobState, 0) for job_type in JobType}
    for type_name, states in jobs.items():
        for state in states.split():
            result[JobType(type_name)][JobState(state)] += 1
    return result


CASES = [
    ({}, False, "new"),
    ({"scan": R}, False, "scanning"),
    ({"scan": P, "pack": f"{D} {R}"}, False, "scanning"),  # packs run while the scan goes on
    ({"scan": Z}, False, "paused"),
    ({"scan": D, "pack": f"{D} {P} {R}"}, False, "packing"),
    ({"scan": D, "pack": f"{D} {C}"}, False, "packing"),
    ({"scan": D, "pack": f"{D} {Z} {R}"}, False, "packing"),
    ({"scan": D, "pack": f"{D} {Z} {Z}"}, False, "paused"),
    ({"scan": D, "pack": f"{D} {E}"}, False, "error"),
    ({"scan": E}, False, "error"),
    ({"scan": D, "pack": f"{D} {D}"}, False, "packed"),  # manual mode, before start-daggen
    ({"scan": D, "pack": f"{D} {D}"}, True, "done"),  # no DAG wanted
    ({"scan": D}, False, "done"),  # an empty source: nothing to pack
    ({"scan": D, "pack": D, "daggen": R}, False, "dag"),
    ({"scan": D, "pack": D, "daggen": P}, False, "dag"),
    ({"scan": D, "pack": D, "daggen": Z}, False, "paused"),
    ({"scan": D, "pack": D, "daggen": E}, False, "error"),
    ({"scan": D, "pack": D, "daggen": D}, False, "done"),
    ({"pack": f"{D} {R}"}, False, "packing"),  # pack jobs without a scan job (made by hand)
]


@pytest.mark.parametrize(("jobs", "no_dag", "stage"), CASES)
def test_stage(jobs: dict[str, str], no_dag: bool, stage: str) -> None:
    assert pipeline_stage(counts(**jobs), no_dag=no_dag) == stage
