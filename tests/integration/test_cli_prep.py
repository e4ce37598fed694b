"""`dataset-worker prep …` and `jobs list` end to end, through the real Typer app and database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from dataset_worker import prep as prep_package
from dataset_worker.cli import app
from dataset_worker.cli import prep as cli_prep
from dataset_worker.content.cid import cid_to_str, dag_pb_cid, piece_cid
from dataset_worker.content.piececid2 import parse_piece_cid_v2
from dataset_worker.db import Database
from dataset_worker.db.models import Car, Job, JobState, JobType, PieceType, SourceAttachment
from dataset_worker.prep import PreparationStatus

Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    """Invoke the CLI with this test's state dir and database; returns the click Result."""
    runner = CliRunner()
    root = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url]

    def invoke(*args: str) -> Result:
        return runner.invoke(app, [*root, *args])

    return invoke


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("hello")
    return folder


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _create(run: Run, source: Path, tmp_path: Path, name: str = "demo", *extra: str) -> Any:
    out = str(tmp_path / f"{name}-cars")
    # --no-auto: these tests start each step themselves.
    return _json(run("prep", "create", "--name", name, "--source", str(source), "--output", out, "--no-auto", *extra, "--json"))  # fmt: skip


def _set_states(db: Database, job_type: JobType, state: JobState, *, error: str = "") -> None:
    with db.write() as session:
        session.execute(
            update(Job).where(Job.type == job_type).values(state=state, error_message=error)
        )


def _add_pack_jobs(db: Database, states: list[JobState]) -> list[int]:
    with db.write() as session:
        attachment = session.scalars(select(SourceAttachment.id)).first()
        jobs = [Job(type=JobType.PACK, state=s, attachment_id=attachment) for s in states]
        session.add_all(jobs)
        session.flush()
        return [job.id for job in jobs]


# --- create and list ------------------------------------------------------------------------------


def test_create_prints_a_summary_and_list_shows_it(run: Run, source: Path, tmp_path: Path) -> None:
    out = tmp_path / "cars"
    result = run("prep", "create", "--name", "photos", "--source", str(source), "--output", str(out),
                 "--max-size", "1000000", "--no-dag")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert 'Created preparation "photos" (id 1)' in result.stdout
    assert f"source: {source}" in result.stdout
    assert "piece size 1 MiB" in result.stdout and "no DAG" in result.stdout
    assert out.is_dir()

    listed = run("prep", "list")
    assert listed.exit_code == 0
    assert "photos" in listed.stdout and str(out) in listed.stdout

    [data] = _json(run("prep", "list", "--json"))
    assert data["name"] == "photos"
    assert (data["maxSize"], data["pieceSize"], data["noDag"]) == (1_000_000, 1 << 20, True)
    assert data["sourceStorages"][0]["name"] == "photos-source"


def test_create_json_has_camel_case_keys_and_defaults(
    run: Run, source: Path, tmp_path: Path
) -> None:
    data = _create(run, source, tmp_path, "demo", "--delete-after-export")
    assert data["maxSize"] == 33_822_867_456
    assert data["minPieceSize"] == 1 << 20
    assert data["deleteAfterExport"] is True
    assert data["outputStorages"][0]["path"] == str(tmp_path / "demo-cars")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "123"], 'name "123" must not be all digits'),
        (["--max-size", "huge"], 'maxSize: invalid size "huge"'),
        (["--piece-size", "3MiB"], "pieceSize must be a power of two"),
        (["--max-size", "32GiB"], "maxSize needs to be reduced to leave space for padding"),
        (["--min-piece-size", "3KiB"], "minPieceSize must be a power of two"),
    ],
)
def test_create_errors_are_one_sentence_and_create_nothing(
    run: Run, source: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    base = {"--name": "demo", "--source": str(source), "--output": str(tmp_path / "out")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = run("prep", "create", *[x for pair in base.items() for x in pair])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stdout == ""
    assert _json(run("prep", "list", "--json")) == []
    assert not (tmp_path / "out").exists()


def test_create_without_output_makes_an_inline_preparation(run: Run, source: Path) -> None:
    result = run("prep", "create", "--name", "demo", "--source", str(source))
    assert result.exit_code == 0, result.stderr
    assert "output: none (inline: pieces are rebuilt from the source when served)" in result.stdout
    (prep,) = _json(run("prep", "list", "--json"))
    assert prep["outputStorages"] == []


def test_create_duplicate_is_refused(run: Run, source: Path, tmp_path: Path) -> None:
    _create(run, source, tmp_path, "demo")
    result = run("prep", "create", "--name", "demo", "--source", str(source),
                 "--output", str(tmp_path / "other"))  # fmt: skip
    assert result.exit_code == 1
    assert 'a preparation named "demo" already exists' in result.stderr
    assert len(_json(run("prep", "list", "--json"))) == 1


def test_create_needs_name_and_source(run: Run) -> None:
    result = run("prep", "create", "--source", "/tmp")
    assert result.exit_code == 2
    assert "--name" in result.stderr


def test_list_without_preparations(run: Run) -> None:
    result = run("prep", "list")
    assert result.exit_code == 0 and "No preparations yet" in result.stdout


# --- start and pause ------------------------------------------------------------------------------


def test_scan_and_daggen_start_pause(run: Run, source: Path, tmp_path: Path) -> None:
    _create(run, source, tmp_path)
    started = run("prep", "start-scan", "demo")
    assert started.exit_code == 0
    assert started.stdout.strip() == 'scan job 1 of preparation "demo" is now ready'

    again = run("prep", "start-scan", "demo")
    assert again.exit_code == 1
    assert 'scan job 1 of preparation "demo" is already queued (state ready)' in again.stderr

    paused = _json(run("prep", "pause-scan", "demo", "--json"))
    assert paused == {"id": 1, "type": "scan", "state": "paused", "errorMessage": "",
                      "workerId": None, "attachmentId": 1}  # fmt: skip
    refused = run("prep", "pause-scan", "demo")
    assert refused.exit_code == 1 and "is not running (state paused)" in refused.stderr

    assert _json(run("prep", "start-daggen", "1", "--json"))["type"] == "daggen"
    assert "is now paused" in run("prep", "pause-daggen", "demo").stdout
    missing = run("prep", "pause-daggen", "nope")
    assert missing.exit_code == 1
    assert 'preparation "nope" not found' in missing.stderr


def test_daggen_refused_with_no_dag(run: Run, source: Path, tmp_path: Path) -> None:
    _create(run, source, tmp_path, "flat", "--no-dag")
    result = run("prep", "start-daggen", "flat")
    assert result.exit_code == 1
    assert 'dag generation is disabled for preparation "flat"' in result.stderr


def test_pack_start_pause_all_and_one(run: Run, db: Database, source: Path, tmp_path: Path) -> None:
    _create(run, source, tmp_path)
    paused, errored, complete = _add_pack_jobs(db, [JobState.PAUSED, JobState.ERROR, JobState.COMPLETE])  # fmt: skip

    started = run("prep", "start-pack", "demo")
    assert started.exit_code == 0
    assert started.stdout.strip() == (
        f'2 pack job(s) of preparation "demo" now ready: {paused}, {errored}'
    )
    refused = run("prep", "start-pack", "demo", str(complete))
    assert refused.exit_code == 1
    assert f"pack job {complete} of preparation" in refused.stderr
    assert "is running or complete (state complete)" in refused.stderr

    one = _json(run("prep", "pause-pack", "demo", str(paused), "--json"))
    assert [(j["id"], j["state"]) for j in one] == [(paused, "paused")]
    rest = _json(run("prep", "pause-pack", "demo", "--json"))
    assert [(j["id"], j["state"]) for j in rest] == [(errored, "paused")]
    nothing = run("prep", "pause-pack", "demo")
    assert nothing.exit_code == 0 and "nothing changed" in nothing.stdout
    unknown = run("prep", "start-pack", "demo", "4242")
    assert unknown.exit_code == 1
    assert 'pack job 4242 of preparation "demo" not found' in unknown.stderr


# --- status ---------------------------------------------------------------------------------------


def test_status_human_and_json(run: Run, db: Database, source: Path, tmp_path: Path) -> None:
    _create(run, source, tmp_path)
    run("prep", "start-scan", "demo")
    _add_pack_jobs(db, [JobState.READY, JobState.COMPLETE])

    human = run("prep", "status", "demo")
    assert human.exit_code == 0
    assert 'Preparation "demo"' in human.stdout
    for word in ("scan", "pack", "daggen", "processing", "Bytes scanned", "Bytes packed"):
        assert word in human.stdout

    data = _json(run("prep", "status", "demo", "--json"))
    assert data["jobs"]["scan"]["ready"] == 1
    assert data["jobs"]["pack"] == {"created": 0, "ready": 1, "paused": 0, "processing": 0,
                                    "complete": 1, "error": 0}  # fmt: skip
    assert data["bytesScanned"] == 0 and data["rootCid"] is None


def test_status_watch_stops_when_all_jobs_are_complete(
    run: Run, db: Database, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(run, source, tmp_path)
    run("prep", "start-scan", "demo")
    _add_pack_jobs(db, [JobState.READY])
    monkeypatch.setattr(cli_prep, "WATCH_INTERVAL", 0.01)
    polls: list[PreparationStatus] = []
    # The command imports the use-case when it runs (a fast CLI start): patch it at its source.
    real = prep_package.get_preparation_status

    def status_then_finish(database: Database, prep: str) -> PreparationStatus:
        status = real(database, prep)
        polls.append(status)
        if len(polls) == 2:  # the worker finishes everything between two refreshes
            _set_states(db, JobType.SCAN, JobState.COMPLETE)
            _set_states(db, JobType.PACK, JobState.COMPLETE)
        return status

    monkeypatch.setattr(prep_package, "get_preparation_status", status_then_finish)
    result = run("prep", "status", "demo", "--watch")
    assert result.exit_code == 0, result.output
    assert len(polls) == 3
    assert "pack jobs" in result.stdout and "1/1" in result.stdout


def test_status_watch_json_lines_and_failure_exit(
    run: Run, db: Database, source: Path, tmp_path: Path
) -> None:
    _create(run, source, tmp_path)
    run("prep", "start-scan", "demo")
    _set_states(db, JobType.SCAN, JobState.ERROR, error="listing failed")
    result = run("prep", "status", "demo", "--watch", "--json")
    assert result.exit_code == 1
    [line] = result.stdout.splitlines()
    assert json.loads(line)["jobs"]["scan"]["error"] == 1
    assert '1 job(s) of preparation "demo" failed' in result.stderr


# --- pieces and jobs ------------------------------------------------------------------------------


def test_pieces_json_and_table(run: Run, db: Database, source: Path, tmp_path: Path) -> None:
    prep = _create(run, source, tmp_path)
    empty = run("prep", "pieces", "demo")
    assert empty.exit_code == 0 and "has no pieces yet" in empty.stdout
    commitment = bytes(range(32))
    root = dag_pb_cid(b"root")
    with db.write() as session:
        session.add(
            Car(piece_type=PieceType.DAG, piece_cid=piece_cid(commitment), piece_size=1 << 20,
                root_cid=root, file_size=1234, storage_path="x.car", preparation_id=prep["id"],
                attachment_id=1)
        )  # fmt: skip
    [piece] = _json(run("prep", "pieces", "demo", "--json"))
    assert piece["pieceCid"] == cid_to_str(piece_cid(commitment))
    assert piece["rootCid"] == cid_to_str(root)
    assert (piece["pieceSize"], piece["fileSize"], piece["pieceType"]) == (1 << 20, 1234, "dag")
    assert piece["storagePath"] == "x.car"
    v2 = parse_piece_cid_v2(piece["pieceCidV2"])  # FRC-0069: the payload is the 1234-byte file
    assert (v2.v1, v2.payload_size, v2.piece_size) == (piece["pieceCid"], 1234, 1 << 20)
    table = run("prep", "pieces", "demo")
    assert table.exit_code == 0
    assert cid_to_str(piece_cid(commitment)) in table.stdout and "x.car" in table.stdout


def test_jobs_list_filters_pages_and_errors(
    run: Run, db: Database, source: Path, tmp_path: Path
) -> None:
    _create(run, source, tmp_path)
    run("prep", "start-scan", "demo")
    ids = _add_pack_jobs(db, [JobState.READY] * 3 + [JobState.ERROR])
    _set_states(db, JobType.SCAN, JobState.COMPLETE)

    page = _json(run("jobs", "list", "--json", "--type", "pack", "--limit", "2"))
    assert [j["id"] for j in page["jobs"]] == [ids[3], ids[2]]
    assert page["nextCursor"] == str(ids[2])
    rest = _json(run("jobs", "list", "--json", "--type", "pack", "--cursor", page["nextCursor"]))
    assert [j["id"] for j in rest["jobs"]] == [ids[1], ids[0]] and rest["nextCursor"] is None
    errors = _json(run("jobs", "list", "--json", "--status", "error", "--prep", "demo"))
    assert [j["id"] for j in errors["jobs"]] == [ids[3]]
    assert errors["jobs"][0]["preparation"] == "demo"

    human = run("jobs", "list", "--limit", "2")
    assert human.exit_code == 0
    assert "pack" in human.stdout and f"more: --cursor {ids[2]}" in human.stdout
    none = run("jobs", "list", "--status", "paused")
    assert none.exit_code == 0 and "no jobs match" in none.stdout

    for args, message in [
        (["--limit", "0"], "limit must be between 1 and 1000, got 0"),
        (["--limit", "5000"], "limit must be between 1 and 1000, got 5000"),
        (["--status", "done"], 'status must be one of created, ready'),
        (["--type", "copy"], 'type must be one of scan, pack, daggen, got "copy"'),
        (["--cursor", "xyz"], 'cursor "xyz" is not valid'),
        (["--prep", "ghost"], 'preparation "ghost" not found'),
    ]:  # fmt: skip
        result = run("jobs", "list", *args)
        assert result.exit_code == 1, args
        assert message in result.stderr, (args, result.stderr)
    assert run("jobs", "list", "--limit", "many").exit_code == 2


# --- the default database -------------------------------------------------------------------------


def test_default_sqlite_database_is_created_in_the_state_dir(tmp_path: Path, source: Path) -> None:
    state = tmp_path / "fresh" / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASET_WORKER_")}
    base = [sys.executable, "-m", "dataset_worker", "--state-dir", str(state)]
    created = subprocess.run(
        [*base, "prep", "create", "--name", "d", "--source", str(source),
         "--output", str(tmp_path / "o"), "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["name"] == "d"
    assert (state / "dataset-worker.db").is_file()
    listed = subprocess.run(
        [*base, "prep", "list", "--json"], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert [p["name"] for p in json.loads(listed.stdout)] == ["d"]


def test_sqlite_file_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}"
    result = CliRunner().invoke(app, ["--state-dir", str(tmp_path / "s"), "--database-url", url, "prep", "list"])  # fmt: skip
    assert result.exit_code == 1
    assert "does not exist" in result.stderr and "nowhere" in result.stderr


def test_status_watch_exits_130_on_ctrl_c(tmp_path: Path, source: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASET_WORKER_")}
    base = [sys.executable, "-m", "dataset_worker", "--state-dir", str(tmp_path / "state")]
    create = ["prep", "create", "--name", "d", "--source", str(source), "--no-auto"]
    for args in (
        [*create, "--output", str(tmp_path / "o")],
        ["prep", "start-scan", "d"],
    ):
        subprocess.run([*base, *args], env=env, check=True, capture_output=True, timeout=60)
    with subprocess.Popen(
        [*base, "prep", "status", "d", "--watch", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as watch:  # fmt: skip
        try:
            assert watch.stdout is not None
            first = watch.stdout.readline()  # blocks until the first refresh is printed
            assert json.loads(first)["jobs"]["scan"]["ready"] == 1
            watch.send_signal(signal.SIGINT)
            assert watch.wait(timeout=30) == 130
        finally:
            watch.kill()
