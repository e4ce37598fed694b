"""Sharded S3 listing (`scan_shards`) against real S3 servers: the same entries in the same order
as one stream, hence the same recorded rows, pack jobs and CAR bytes; a shard that fails stops
the walk exactly where its directory is reached, so the listing never looks complete."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.utils import parse_timestamp as botocore_timestamp
from sqlalchemy import select
from typer.testing import CliRunner, Result

from dataset_worker.cli import app
from dataset_worker.db import Database
from dataset_worker.db.models import Directory, File, FileRange, JobState, JobType
from dataset_worker.storage import SourceEntry, StorageError
from dataset_worker.storage.base import ListingFailed, WalkStart
from dataset_worker.storage.s3 import S3Source
from dataset_worker.storage.s3client import parse_timestamp, s3_api
from dataset_worker.storage.s3config import S3Config, parse_s3_url
from dataset_worker.worker.jobs.scan.resume import resume_point
from dataset_worker.worker.jobs.scan.writer import parent_path
from tests.integration.worker_support import job, spawner
from tests.support.faultproxy import Fault, Request, fault_proxy
from tests.support.jobs import add_job, run_job, write_files
from tests.support.s3servers import S3Server
from tests.support.storages import StorageSpec, make_preparation, prepared, run_all
from tests.support.wait import wait_until

MAX_SIZE = 200_000  # many pack jobs, so a different grouping would show
MIN_PIECE_SIZE = 1 << 16
# Several levels, prefixes whose key order differs from their name order ("a/" after "a-b"),
# empty-ish folders and a file next to a folder of the same name.
TREE: dict[str, int | bytes] = {
    **{f"p{n:02d}/f{k:03d}.bin": 1000 + 37 * n + k for n in range(6) for k in range(7)},
    **{
        f"p{n:02d}/sub{m}/g{k}.txt": 50_000 + n + m + k
        for n in range(3)
        for m in range(3)
        for k in range(4)
    },
    "a-b": 12_345,
    "a/x.bin": 70_000,
    "a/a!/deep.txt": b"deep",
    "a/a/deeper.txt": b"deeper",
    "a!/y": 10,
    "top.bin": 150_000,
    "z/zz/zzz/last.bin": 99_999,
}


def entries(source: S3Source) -> list[SourceEntry]:
    """The whole walk (no listing errors are expected)."""
    errors: list[str] = []
    found = list(source.walk(lambda path, exc: errors.append(path)))
    assert errors == []
    return found


def make_source(server_config: dict[str, object], url: str, **options: int) -> S3Source:
    """An S3Source over `url` with the given page size and shards."""
    return S3Source(s3_api(S3Config.from_mapping(server_config)), parse_s3_url(url), **options)


@pytest.fixture
def bucket(s3_server: S3Server, tmp_path: Path) -> str:
    """A bucket holding TREE under `data/`."""
    write_files(tmp_path / "src", TREE)
    name = s3_server.new_bucket()
    s3_server.put_tree(name, tmp_path / "src", "data/")
    return name


def test_sharded_walk_equals_one_stream(s3_server: S3Server, bucket: str) -> None:
    url = f"s3://{bucket}/data"
    one = entries(make_source(s3_server.config(), url))
    assert len([e for e in one if not e.is_dir]) == len(TREE)
    for page_size in (1, 3, 1000):  # tiny pages: many chunks per directory, full buffers
        for shards in (2, 3, 8):
            sharded = entries(
                make_source(s3_server.config(), url, page_size=page_size, shards=shards)
            )
            assert sharded == one, (page_size, shards)  # path, kind, size, mtime, ETag, order


def test_a_walk_resumed_after_any_entry_gives_the_rest(s3_server: S3Server, bucket: str) -> None:
    """What scan/resume.py derives from the rows of a scan cut after entry k: the walk from there
    gives exactly the entries after k, also where key order and name order differ (resumed after
    "a!", S3 lists the recorded folder "a/" again: it is not handed out twice)."""
    url = f"s3://{bucket}/data"
    one = entries(make_source(s3_server.config(), url))
    source = make_source(s3_server.config(), url, page_size=2, shards=3)
    folders = [""] + [e.path for e in one if e.is_dir]  # in walk (= directory id) order
    for k in range(1, len(one)):
        last = one[k - 1]
        current = parent_path(last.path)
        recorded = [""] + [e.path for e in one[:k] if e.is_dir]
        pending = tuple(recorded[recorded.index(current) :])
        assert pending == tuple(folders[folders.index(current) : len(recorded)])
        after = last.path.rsplit("/", 1)[-1]
        resumed = list(source.walk_from(lambda path, exc: None, WalkStart(pending, after)))
        assert resumed == one[k:], k


def _lists_prefix(prefix: str) -> object:
    def match(request: Request) -> bool:
        return "list-type=2" in request.path and f"prefix=data%2F{prefix}%2F&" in request.path

    return match


def test_a_failing_shard_stops_the_walk_where_it_is_reached(
    s3_server: S3Server, bucket: str
) -> None:
    one = entries(make_source(s3_server.config(), f"s3://{bucket}/data"))
    first_child = next(i for i, e in enumerate(one) if e.path.startswith("p03/"))
    with fault_proxy(s3_server.endpoint) as proxy:
        config = s3_server.config(max_attempts=2)
        config["endpoint"] = proxy.endpoint
        proxy.arm(Fault("slowdown", 1000, _lists_prefix("p03")))  # type: ignore[arg-type]
        source = make_source(config, f"s3://{bucket}/data", page_size=2, shards=4)
        walked: list[SourceEntry] = []
        with pytest.raises(ListingFailed, match=f"listing s3://{bucket}/data/p03/ failed"):
            for entry in source.walk(lambda path, exc: None):
                walked.append(entry)
        assert proxy.injected["slowdown"] == 2
    # Everything before p03's listing, in order, and nothing of p03 or after it: the shards
    # listed ahead (p04, p05, …) are not handed out past the failed one.
    assert walked == one[:first_child]


def test_sharded_scan_records_the_same_rows_and_pieces(
    db: Database, tmp_path: Path, s3_server: S3Server, bucket: str
) -> None:
    results = []
    for shards in (1, 8):
        config = s3_server.config(scan_shards=str(shards))
        out = tmp_path / f"out-{shards}"
        out.mkdir()
        attachment = make_preparation(
            db,
            f"shards-{shards}",
            StorageSpec("s3", f"s3://{bucket}/data", config),
            StorageSpec("local", str(out)),
            max_size=MAX_SIZE,
            min_piece_size=MIN_PIECE_SIZE,
        )
        runs = run_all(db, attachment)
        assert [r.error for r in runs if r.state is not JobState.COMPLETE] == []
        with db.read() as session:
            files = session.execute(
                select(File.path, File.size, File.hash, File.last_modified_nano)
                .where(File.attachment_id == attachment)
                .order_by(File.id)
            ).all()
            job_ids = session.scalars(
                select(FileRange.job_id)
                .join(File, File.id == FileRange.file_id)
                .where(File.attachment_id == attachment)
                .order_by(FileRange.id)
            ).all()
        first = job_ids[0]
        assert first is not None
        # Ranges in id order, each with its pack job counted from this scan's first job.
        grouping = [(job_id or 0) - first for job_id in job_ids]
        results.append((files, grouping, prepared(db, attachment, folder=out)))
    (files_one, grouping_one, pieces_one), (files_sharded, grouping_sharded, pieces_sharded) = (
        results
    )
    assert len(set(grouping_one)) > 5  # several pack jobs
    assert files_sharded == files_one
    assert grouping_sharded == grouping_one
    assert pieces_sharded == pieces_one  # same piece CIDs, root CID and CAR bytes


def test_scan_shards_setting() -> None:
    assert S3Config.from_mapping({}).scan_shards == 8
    assert S3Config.from_mapping({"scan_shards": "1"}).scan_shards == 1
    for bad in ("0", "33", "many"):
        with pytest.raises(StorageError, match='S3 config "scan_shards" must be'):
            S3Config.from_mapping({"scan_shards": bad})


def test_fast_timestamps_equal_botocore() -> None:
    for text in (
        "2026-12-05T15:37:16.000Z",
        "2026-12-05T15:37:16Z",
        "2026-12-05T15:37:16.123456789Z",  # more digits than microseconds: truncated alike
        "Sat, 05 Dec 2026 15:37:16 GMT",  # an HTTP date: botocore's parser
        "2026-12-05T15:37:16+02:00",
    ):
        assert parse_timestamp(text) == botocore_timestamp(text), text
    assert parse_timestamp("2026-12-05T15:37:16.5Z") == datetime(
        2026, 12, 5, 15, 37, 16, 500_000, tzinfo=UTC
    )


# --- resume after kill -9 -------------------------------------------------------------------

RESUME_TREE: dict[str, int | bytes] = {
    **{f"p{n:02d}/top{k}.bin": 20_000 + n * 10 + k for n in range(12) for k in range(2)},
    **{
        f"p{n:02d}/s{m}/f{k}.bin": 30_000 + n * 100 + m * 10 + k
        for n in range(12)
        for m in range(3)
        for k in range(2)
    },
}
STALLED = "p09/s1"  # a second-level folder late in the walk: listed after most of the tree
RUN = ["--no-enable-pack", "--no-enable-dag", "--min-interval", "100ms", "--max-interval", "300ms"]
REAPER = ["--heartbeat-interval", "1s", "--stale-after", "3s"]


def _listed_prefix(request: Request) -> str | None:
    """The folder a listing request lists ("" for the root), or None for another request."""
    if "list-type=2" not in request.path:
        return None
    query = parse_qs(urlsplit(request.path).query)
    return query.get("prefix", [""])[0].removeprefix("data/").removesuffix("/")


def _scan_rows(db: Database, attachment: int) -> tuple[list[tuple[object, ...]], list[int]]:
    """The attachment's files in id order and each range's pack job, numbered in job order
    (ids may have gaps: a resumed scan replaces the job its killed run was filling)."""
    with db.read() as session:
        files = session.execute(
            select(File.path, File.size, File.hash, File.last_modified_nano)
            .where(File.attachment_id == attachment)
            .order_by(File.id)
        ).all()
        job_ids = session.scalars(
            select(FileRange.job_id)
            .join(File, File.id == FileRange.file_id)
            .where(File.attachment_id == attachment)
            .order_by(FileRange.id)
        ).all()
    rank = {job_id: n for n, job_id in enumerate(sorted({j for j in job_ids if j is not None}))}
    return [tuple(row) for row in files], [-1 if j is None else rank[j] for j in job_ids]


def _complete_folders(db: Database, attachment: int) -> set[str]:
    """Folders of RESUME_TREE all of whose children are recorded (their listing was used up)."""
    with db.read() as session:
        files = set(session.scalars(select(File.path).where(File.attachment_id == attachment)))
        rows = session.execute(
            select(Directory.id, Directory.parent_id, Directory.name).where(
                Directory.attachment_id == attachment
            )
        ).all()
    names = {dir_id: (parent, name) for dir_id, parent, name in rows}

    def path(dir_id: int) -> str:
        parent, name = names[dir_id]
        if parent is None:
            return ""
        above = path(parent)
        return f"{above}/{name}" if above else name

    folders = {path(dir_id) for dir_id in names}
    children: dict[str, set[str]] = {}
    for rel in RESUME_TREE:
        parts = rel.split("/")
        for depth in range(len(parts)):
            children.setdefault("/".join(parts[:depth]), set()).add("/".join(parts[: depth + 1]))
    return {
        folder
        for folder, kids in children.items()
        if all(kid in files or kid in folders for kid in kids)
    }


@pytest.mark.slow
def test_a_killed_sharded_scan_resumes_each_listing_where_its_rows_end(
    db: Database, database_url: str, tmp_path: Path, moto_server: S3Server
) -> None:
    write_files(tmp_path / "src", RESUME_TREE)
    bucket = moto_server.new_bucket()
    moto_server.put_tree(bucket, tmp_path / "src", "data/")
    url = f"s3://{bucket}/data"
    (tmp_path / "out").mkdir()

    reference = make_preparation(
        db,
        "reference",
        StorageSpec("s3", url, moto_server.config(scan_shards="1")),
        StorageSpec("local", str(tmp_path / "out")),
        max_size=MAX_SIZE,
        min_piece_size=MIN_PIECE_SIZE,
    )
    assert run_job(db, add_job(db, reference, JobType.SCAN)).state is JobState.COMPLETE

    with fault_proxy(moto_server.endpoint) as proxy, spawner(tmp_path, database_url) as spawn:
        proxy.latency = 0.3  # the walk takes seconds, so batches commit before the stall
        config = moto_server.config(scan_shards="2")
        config["endpoint"] = proxy.endpoint
        attachment = make_preparation(
            db,
            "killed",
            StorageSpec("s3", url, config),
            StorageSpec("local", str(tmp_path / "out")),
            max_size=MAX_SIZE,
            min_piece_size=MIN_PIECE_SIZE,
        )
        proxy.arm(Fault("stall", 1, lambda r: _listed_prefix(r) == STALLED, after=0, seconds=120))
        scan_id = add_job(db, attachment, JobType.SCAN)
        first = spawn(None, *RUN, *REAPER)

        def recorded() -> int:
            with db.read() as session:
                return len(
                    session.scalars(select(File.id).where(File.attachment_id == attachment)).all()
                )

        wait_until(lambda: proxy.injected["stall"] == 1 and recorded() > 0, 120, "the stall")
        first.signal(signal.SIGKILL)
        first.wait()
        complete = _complete_folders(db, attachment)
        assert "" in complete and STALLED not in complete and len(complete) > 10
        with db.read() as session:
            start = resume_point(session, attachment)
        assert start is not None and not set(start.pending[1:]) & complete  # used-up: not again
        before = len(proxy.seen)

        second = spawn(None, *RUN, *REAPER)
        wait_until(lambda: job(db, scan_id).state is JobState.COMPLETE, 120, "the resumed scan")
        second.signal(signal.SIGTERM)
        second.wait()
        assert "scan.resume" in second.output()
        relisted = [
            request for request in proxy.seen[before:] if _listed_prefix(request) in complete
        ]

    # A folder whose rows were all committed is listed again at most once (the one the walk was
    # in, from after its last recorded name), every other one not at all.
    assert len(relisted) <= 1
    assert all("start-after=" in request.path for request in relisted)
    files, grouping = _scan_rows(db, attachment)
    assert len(files) == len(RESUME_TREE) == len({row[0] for row in files})  # none twice
    assert (files, grouping) == _scan_rows(db, reference)  # same rows, same pack jobs
    with db.read() as session:
        assert resume_point(session, attachment) is None  # listed to the end: a rescan lists all


def test_storage_create_scan_shards(database_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    root = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url]

    def create(*args: str) -> Result:
        return runner.invoke(app, [*root, "storage", "create", *args, "--json"])

    made = create("lake", "s3://bucket/p", "--scan-shards", "3")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["config"] == {"scan_shards": "3"}
    refused = create("lake2", "s3://bucket/p", "--scan-shards", "0")
    assert refused.exit_code == 1
    assert 'S3 config "scan_shards" must be between 1 and 32' in refused.output
    both = create("lake3", "s3://bucket/p", "--scan-shards", "2", "--option", "scan_shards=4")
    assert both.exit_code == 1 and "--option and --scan-shards" in both.output
    (tmp_path / "folder").mkdir()
    local = create("disk", str(tmp_path / "folder"), "--scan-shards", "4")
    assert local.exit_code == 0, local.output
    assert "applies to S3 storages only; ignored" in local.stderr
    assert json.loads(local.stdout)["config"] == {}
