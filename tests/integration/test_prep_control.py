"""Start/pause of scan, pack and daggen jobs: every allowed and refused transition (docs/architecture.md#job-states-and-transitions)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.models import (
    Directory,
    Job,
    JobState,
    JobType,
    Preparation,
    SourceAttachment,
    Worker,
    utcnow,
)
from dataset_worker.prep import (
    Conflict,
    CreatePreparationRequest,
    InvalidParameter,
    JobView,
    NotFound,
    create_preparation,
    list_preparations,
    pause_daggen,
    pause_pack,
    pause_scan,
    start_daggen,
    start_pack,
    start_scan,
)

S = JobState
SingleChange = Callable[[Database, str | int], JobView]


def _prep(db: Database, tmp_path: Path, name: str = "p", *, no_dag: bool = False) -> int:
    source = tmp_path / f"{name}-src"
    source.mkdir()
    req = CreatePreparationRequest(
        name=name,
        source=str(source),
        output=str(tmp_path / f"{name}-out"),
        no_dag=no_dag,
        no_auto=True,  # these tests start every job themselves
    )
    create_preparation(db, req)
    return _attachment(db, name)


def _attachment(db: Database, name: str) -> int:
    with db.read() as session:
        return session.scalars(
            select(SourceAttachment.id).join(Preparation).where(Preparation.name == name)
        ).one()


def _add_job(
    db: Database, attachment: int, job_type: JobType, state: JobState, *, worker: str | None = None
) -> int:
    with db.write() as session:
        if worker is not None and session.get(Worker, worker) is None:
            session.add(Worker(id=worker, last_heartbeat=utcnow(), hostname="h"))
            session.flush()
        job = Job(
            type=job_type,
            state=state,
            attachment_id=attachment,
            worker_id=worker,
            error_message="boom" if state is S.ERROR else "",
            error_stack_trace="trace" if state is S.ERROR else "",
            started_at=utcnow(),
            finished_at=utcnow() if state in (S.COMPLETE, S.ERROR) else None,
        )
        session.add(job)
        session.flush()
        return job.id


def _job(db: Database, job_id: int) -> Job:
    with db.read() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _jobs_of_type(db: Database, job_type: JobType) -> list[Job]:
    with db.read() as session:
        return list(session.scalars(select(Job).where(Job.type == job_type).order_by(Job.id)))


START_SINGLE = [(start_scan, JobType.SCAN), (start_daggen, JobType.DAGGEN)]
PAUSE_SINGLE = [(pause_scan, JobType.SCAN), (pause_daggen, JobType.DAGGEN)]


# --- scan and daggen: one job row per attachment ------------------------------------------------


@pytest.mark.parametrize(("start", "job_type"), START_SINGLE)
def test_first_start_creates_one_ready_job(
    db: Database, tmp_path: Path, start: SingleChange, job_type: JobType
) -> None:
    attachment = _prep(db, tmp_path)
    view = start(db, "p")
    assert (view.type, view.state, view.attachment_id) == (job_type, S.READY, attachment)
    assert view.error_message == ""
    assert [j.id for j in _jobs_of_type(db, job_type)] == [view.id]


@pytest.mark.parametrize(("start", "job_type"), START_SINGLE)
@pytest.mark.parametrize("state", [S.CREATED, S.PAUSED, S.ERROR, S.COMPLETE])
def test_start_reuses_the_row_and_makes_it_ready(
    db: Database, tmp_path: Path, start: SingleChange, job_type: JobType, state: JobState
) -> None:
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, job_type, state)
    if job_type is JobType.DAGGEN and state is S.COMPLETE:
        view = start_daggen(db, "p", force=True)  # a done daggen only with force (below)
    else:
        view = start(db, "p")
    assert (view.id, view.state, view.error_message) == (job_id, S.READY, "")
    job = _job(db, job_id)
    assert (job.state, job.error_message, job.error_stack_trace) == (S.READY, "", "")
    assert (job.started_at, job.finished_at) == (None, None)
    assert len(_jobs_of_type(db, job_type)) == 1


@pytest.mark.parametrize(("start", "job_type"), START_SINGLE)
@pytest.mark.parametrize("state", [S.READY, S.PROCESSING])
def test_start_of_a_queued_or_running_job_is_a_conflict_naming_its_state(
    db: Database, tmp_path: Path, start: SingleChange, job_type: JobType, state: JobState
) -> None:
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, job_type, state)
    # A ready job is queued, not running: the message says which (HTTP 409, not 400).
    what = "queued" if state is S.READY else "running"
    with pytest.raises(
        Conflict,
        match=rf'{job_type} job {job_id} of preparation "p" is already {what} \(state {state}\)',
    ):
        start(db, "p")
    assert _job(db, job_id).state is state


def test_a_done_daggen_is_restarted_only_with_force(db: Database, tmp_path: Path) -> None:
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, JobType.DAGGEN, S.COMPLETE)
    with pytest.raises(
        Conflict,
        match=rf'daggen job {job_id} of preparation "p" is already done \(state complete\): its '
        r"DAG piece holds every folder; force it \(--force, or \?force=true over HTTP\)",
    ):
        start_daggen(db, "p")
    assert _job(db, job_id).state is S.COMPLETE
    assert start_daggen(db, "p", force=True).state is S.READY


def test_a_done_daggen_restarts_without_force_when_a_folder_changed_since(
    db: Database, tmp_path: Path
) -> None:
    """After a rescan (or a later pack) a folder has content the DAG piece does not hold: a new
    daggen has work to do, so it is no conflict."""
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, JobType.DAGGEN, S.COMPLETE)
    with db.write() as session:
        folder = session.scalars(
            select(Directory).where(Directory.attachment_id == attachment)
        ).first()
        assert folder is not None
        folder.cid, folder.exported = b"\x01\x70\x12\x20" + bytes(32), False
    assert start_daggen(db, "p").state is S.READY
    assert _job(db, job_id).state is S.READY


def test_start_scan_twice_is_refused_the_second_time(db: Database, tmp_path: Path) -> None:
    _prep(db, tmp_path)
    start_scan(db, "p")
    with pytest.raises(Conflict, match="already queued"):
        start_scan(db, "p")
    assert len(_jobs_of_type(db, JobType.SCAN)) == 1


def test_start_daggen_refused_when_no_dag(db: Database, tmp_path: Path) -> None:
    _prep(db, tmp_path, no_dag=True)
    with pytest.raises(InvalidParameter, match='dag generation is disabled for preparation "p"'):
        start_daggen(db, "p")
    assert _jobs_of_type(db, JobType.DAGGEN) == []


def test_jobs_belong_to_their_own_preparation(db: Database, tmp_path: Path) -> None:
    a = _prep(db, tmp_path, "a")
    b = _prep(db, tmp_path, "b")
    assert start_scan(db, "a").attachment_id == a
    assert start_scan(db, "b").attachment_id == b
    assert len(_jobs_of_type(db, JobType.SCAN)) == 2


@pytest.mark.parametrize(("pause", "job_type"), PAUSE_SINGLE)
@pytest.mark.parametrize("state", [S.READY, S.PROCESSING])
def test_pause_a_running_job_keeps_its_worker(
    db: Database, tmp_path: Path, pause: SingleChange, job_type: JobType, state: JobState
) -> None:
    attachment = _prep(db, tmp_path)
    worker = "w-1" if state is S.PROCESSING else None
    job_id = _add_job(db, attachment, job_type, state, worker=worker)
    view = pause(db, "p")
    assert (view.id, view.state, view.worker_id) == (job_id, S.PAUSED, worker)
    assert _job(db, job_id).worker_id == worker


@pytest.mark.parametrize(("pause", "job_type"), PAUSE_SINGLE)
@pytest.mark.parametrize("state", [S.CREATED, S.PAUSED, S.COMPLETE, S.ERROR])
def test_pause_refuses_a_job_that_is_not_running(
    db: Database, tmp_path: Path, pause: SingleChange, job_type: JobType, state: JobState
) -> None:
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, job_type, state)
    with pytest.raises(
        InvalidParameter, match=rf"{job_type} job {job_id} .* is not running \(state {state}\)"
    ):
        pause(db, "p")
    assert _job(db, job_id).state is state


@pytest.mark.parametrize(("pause", "job_type"), PAUSE_SINGLE)
def test_pause_without_a_job_is_not_found(
    db: Database, tmp_path: Path, pause: SingleChange, job_type: JobType
) -> None:
    _prep(db, tmp_path)
    with pytest.raises(NotFound, match=f'preparation "p" has no {job_type} job yet'):
        pause(db, "p")


@pytest.mark.parametrize("change", [start_scan, pause_scan, start_daggen, pause_daggen])
def test_unknown_preparation_is_not_found(db: Database, change: SingleChange) -> None:
    with pytest.raises(NotFound, match='preparation "nope" not found'):
        change(db, "nope")
    with pytest.raises(NotFound, match='preparation "77" not found'):
        change(db, "77")


def test_preparation_can_be_named_by_id(db: Database, tmp_path: Path) -> None:
    attachment = _prep(db, tmp_path)
    prep_id = list_preparations(db)[0].id
    assert start_scan(db, str(prep_id)).attachment_id == attachment
    assert pause_scan(db, prep_id).state is S.PAUSED


# --- pack: many jobs per attachment ---------------------------------------------------------------


@pytest.mark.parametrize("state", [S.PAUSED, S.ERROR])
def test_start_pack_one_job(db: Database, tmp_path: Path, state: JobState) -> None:
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, JobType.PACK, state)
    [view] = start_pack(db, "p", job_id)
    assert (view.id, view.state, view.error_message) == (job_id, S.READY, "")
    assert _job(db, job_id).error_stack_trace == ""


@pytest.mark.parametrize("state", [S.READY, S.PROCESSING, S.COMPLETE])
def test_start_pack_refuses_running_or_complete(
    db: Database, tmp_path: Path, state: JobState
) -> None:
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, JobType.PACK, state)
    with pytest.raises(
        InvalidParameter,
        match=rf'pack job {job_id} of preparation "p" is running or complete \(state {state}\)',
    ):
        start_pack(db, "p", job_id)
    assert _job(db, job_id).state is state


def test_start_pack_refuses_a_job_its_scan_is_still_filling(db: Database, tmp_path: Path) -> None:
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, JobType.PACK, S.CREATED)
    with pytest.raises(
        InvalidParameter,
        match=rf'pack job {job_id} of preparation "p" is still being filled by its scan '
        r"\(state created\)",
    ):
        start_pack(db, "p", job_id)
    assert _job(db, job_id).state is S.CREATED


@pytest.mark.parametrize("state", [S.READY, S.PROCESSING])
def test_pause_pack_one_job(db: Database, tmp_path: Path, state: JobState) -> None:
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, JobType.PACK, state)
    assert [v.state for v in pause_pack(db, "p", job_id)] == [S.PAUSED]
    assert _job(db, job_id).state is S.PAUSED


@pytest.mark.parametrize("state", [S.CREATED, S.PAUSED, S.COMPLETE, S.ERROR])
def test_pause_pack_refuses_not_running(db: Database, tmp_path: Path, state: JobState) -> None:
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, JobType.PACK, state)
    with pytest.raises(InvalidParameter, match=rf"pack job {job_id} .* is not running"):
        pause_pack(db, "p", job_id)
    assert _job(db, job_id).state is state


@pytest.mark.parametrize("change", [start_pack, pause_pack])
def test_pack_job_of_another_preparation_or_type_is_not_found(
    db: Database, tmp_path: Path, change: Callable[[Database, str, int], list[JobView]]
) -> None:
    _prep(db, tmp_path, "a")
    other = _prep(db, tmp_path, "b")
    foreign = _add_job(db, other, JobType.PACK, S.PAUSED)
    with pytest.raises(NotFound, match=f'pack job {foreign} of preparation "a" not found'):
        change(db, "a", foreign)
    scan = _add_job(db, _attachment(db, "a"), JobType.SCAN, S.PAUSED)
    with pytest.raises(NotFound, match=f"pack job {scan} "):
        change(db, "a", scan)
    with pytest.raises(NotFound, match="pack job 999999 "):
        change(db, "a", 999999)
    with pytest.raises(InvalidParameter, match="job id must be a positive number, got -1"):
        change(db, "a", -1)


def test_start_pack_all_moves_only_eligible_jobs(db: Database, tmp_path: Path) -> None:
    attachment = _prep(db, tmp_path)
    other = _prep(db, tmp_path, "other")
    ids = {state: _add_job(db, attachment, JobType.PACK, state) for state in JobState}
    foreign = _add_job(db, other, JobType.PACK, S.PAUSED)
    scan = _add_job(db, attachment, JobType.SCAN, S.PAUSED)

    views = start_pack(db, "p")

    expected = sorted(ids[s] for s in (S.PAUSED, S.ERROR))
    assert [v.id for v in views] == expected
    assert all(v.state is S.READY and v.error_message == "" for v in views)
    assert {s: _job(db, i).state for s, i in ids.items()} == {
        S.CREATED: S.CREATED,  # a scan is still filling it
        S.READY: S.READY,
        S.PAUSED: S.READY,
        S.PROCESSING: S.PROCESSING,
        S.COMPLETE: S.COMPLETE,
        S.ERROR: S.READY,
    }
    assert _job(db, foreign).state is S.PAUSED
    assert _job(db, scan).state is S.PAUSED
    assert start_pack(db, "p", 0) == []  # 0 also means "all", as in Singularity; none left


def test_pause_pack_all_moves_only_running_jobs(db: Database, tmp_path: Path) -> None:
    attachment = _prep(db, tmp_path)
    ids = {state: _add_job(db, attachment, JobType.PACK, state) for state in JobState}
    views = pause_pack(db, "p")
    assert [v.id for v in views] == sorted([ids[S.READY], ids[S.PROCESSING]])
    assert {s: _job(db, i).state for s, i in ids.items()} == {
        S.CREATED: S.CREATED,
        S.READY: S.PAUSED,
        S.PAUSED: S.PAUSED,
        S.PROCESSING: S.PAUSED,
        S.COMPLETE: S.COMPLETE,
        S.ERROR: S.ERROR,
    }
    assert pause_pack(db, "p") == []


def test_bulk_pack_views_have_the_job_shape(db: Database, tmp_path: Path) -> None:
    attachment = _prep(db, tmp_path)
    job_id = _add_job(db, attachment, JobType.PACK, S.ERROR)
    [view] = start_pack(db, "p")
    assert view.model_dump(mode="json", by_alias=True) == {
        "id": job_id,
        "type": "pack",
        "state": "ready",
        "errorMessage": "",
        "workerId": None,
        "attachmentId": attachment,
    }
