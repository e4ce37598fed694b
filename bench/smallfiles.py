"""Benchmark: a million small files (issue "Scale: a million small files in under a minute").

A tree of --files files of 0-2 KiB (seeded sizes and bytes) in --folders folders is generated
once and cached in the temp dir (reused by later runs with the same --files/--folders/--seed),
then read once so it sits in the page cache. On each database (SQLite, PostgreSQL) it measures,
each step in a child process of its own (so its peak RSS is its own):
- scan: the real scan job into a fresh database (max size --max-size, else 60 MiB, smaller for
  small trees so that there are at least 4 pack jobs);
- pack, concurrency 1 and 2: every pack job by real worker threads (`dataset-worker run`'s loop:
  claim, handler, outcome), one then two threads, then two single-threaded processes sharing
  one queue, each on its own copy of the scanned database (no reset between);
- daggen: the real daggen job after the packing;
- prepare: `dataset-worker prepare` (a separate process, default concurrency) from scratch, and
  the database's bytes per file after it (minus an empty migrated database).
In the same run: the floor, one thread that walks, opens, reads and sha256s every file; and with
--peer, `ipfs-car pack` of the same tree (installed into bench/.peer on first use).
Wall-time goals are for 1,000,000 files: for a smaller tree they are scaled by files / 1M.

--generated: no tree on disk; the jobs read `bench/gensource.py`'s made-up files through the
storage protocol instead (ten million files would take 40 GB), and the floor makes and sha256s
the same bytes. `prepare` (a separate CLI process) cannot use it and is skipped. --no-threads
and --no-processes skip the two-thread and two-process pack runs; the data CARs are deleted after each pack run and each database
once it is no longer needed, so a big run needs the disk of one packed copy at a time.

Usage: PYTHONPATH=. .venv/bin/python bench/smallfiles.py [--files 1000000] [--folders 1000]
       [--databases sqlite,postgresql] [--peer] [--skip-prepare] [--generated] [--no-threads]
       [--no-processes]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
GOAL_FILES = 1_000_000
BENCH_DIR = Path(__file__).resolve().parent
PEER_DIR = BENCH_DIR / ".peer"
PG_ENV = "DATASET_WORKER_TEST_POSTGRES_URL"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


# ---------------------------------------------------------------- the tree


def tree_dir(files: int, folders: int, seed: int) -> Path:
    return Path(tempfile.gettempdir()) / f"dw-bench-smallfiles-{files}-{folders}-s{seed}"


def make_tree(files: int, folders: int, seed: int) -> tuple[Path, int]:
    """The cached tree (made when missing): returns its folder and total bytes."""
    base = tree_dir(files, folders, seed)
    done = base / "complete.json"
    if done.exists():
        return base / "tree", int(json.loads(done.read_text())["bytes"])
    shutil.rmtree(base, ignore_errors=True)
    root = base / "tree"
    rng = random.Random(seed)
    started = time.perf_counter()
    total = 0
    for folder in range(folders):
        (root / f"d{folder:05d}").mkdir(parents=True)
    for index in range(files):
        size = rng.randint(0, 2048)
        total += size
        path = root / f"d{index % folders:05d}" / f"f{index:07d}.bin"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, rng.randbytes(size))
        finally:
            os.close(fd)
    done.write_text(json.dumps({"bytes": total}))
    print(f"generated {files:,} files in {time.perf_counter() - started:.0f} s into {root}")
    return root, total


def walk(root: Path) -> list[str]:
    paths: list[str] = []
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    paths.append(entry.path)
    return paths


def floor_generated(spec: str) -> dict[str, Any]:
    """One thread: list, make and sha256 every generated file."""
    source = generated_source(spec)
    count = 0
    for entry in source.walk(lambda _path, _exc: None):
        if not entry.is_dir:
            path = entry.path
            data = source.read_range(path, 0, entry.size, size=entry.size, mtime_ns=entry.mtime_ns)
            hashlib.sha256(data).digest()
            count += 1
    return {"files": count}


def generated_source(spec: str) -> Any:
    """The `--generated` source of a child phase: spec is "files,folders,seed"."""
    from bench.gensource import GeneratedSource

    files, folders, seed = (int(part) for part in spec.split(","))
    return GeneratedSource(files, folders, seed)


def floor(root: Path) -> dict[str, Any]:
    """One thread: walk, open, read and sha256 every file."""
    count = 0
    for path in walk(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            digest = hashlib.sha256()
            while chunk := os.read(fd, MIB):
                digest.update(chunk)
            digest.digest()
        finally:
            os.close(fd)
        count += 1
    return {"files": count}


# ---------------------------------------------------------------- child phases


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_main(args: argparse.Namespace) -> None:
    """Run one phase in this (child) process; print its figures as one JSON line."""
    started, cpu = time.perf_counter(), _cpu()
    if args.phase == "floor":
        result = floor_generated(args.spec) if args.spec else floor(Path(args.tree))
    else:
        result = _db_phase(args, started, cpu)
        started, cpu = result.pop("_started"), result.pop("_cpu")
    result["wall"] = time.perf_counter() - started
    result["cpu"] = _cpu() - cpu
    result["end"] = time.time()
    result["start"] = result["end"] - result["wall"]
    print(json.dumps(result))


def _db_phase(args: argparse.Namespace, started: float, cpu: float) -> dict[str, Any]:
    from sqlalchemy import func, select
    from tests.support.jobs import add_job, make_local_preparation, run_job

    from dataset_worker.db import open_database
    from dataset_worker.db.models import File, Job, JobType, SourceAttachment

    if args.spec:  # --generated: every job of this process reads the made-up files
        from dataset_worker.worker.jobs import attachment as setup_module

        source = generated_source(args.spec)
        job_setup: Any = setup_module  # its global open_source is what the jobs open sources with
        job_setup.open_source = lambda *_storage: source
    db = open_database(args.url)
    try:
        if args.phase == "scan":
            rows = make_local_preparation(
                db, "bench", Path(args.tree), Path(args.out), max_size=args.max_size
            )
            started, cpu = time.perf_counter(), _cpu()
            run = run_job(db, add_job(db, rows.attachment_id, JobType.SCAN))
            if run.error is not None:
                raise RuntimeError(f"scan failed: {run.error}")
            wall = time.perf_counter() - started
            with db.read() as session:
                files = session.scalar(select(func.count()).select_from(File))
                jobs = session.scalar(select(func.count()).where(Job.type == JobType.PACK))
            return {"files": files, "jobs": jobs, "_started": started, "_cpu": cpu, "w": wall}
        with db.read() as session:
            attachment = session.scalar(select(SourceAttachment.id))
            files = session.scalar(select(func.count()).select_from(File)) or 0
        assert attachment is not None
        if args.phase == "daggen":
            job = add_job(db, attachment, JobType.DAGGEN)
            started, cpu = time.perf_counter(), _cpu()
            run = run_job(db, job)
            if run.error is not None:
                raise RuntimeError(f"daggen failed: {run.error}")
            return {"files": files, "_started": started, "_cpu": cpu}
        return _pack_phase(db, attachment, args.threads, files)
    finally:
        db.dispose()


def _pack_phase(db: Any, attachment: int, threads: int, files: int) -> dict[str, Any]:
    """Every ready pack job of the preparation, by `threads` real worker threads (the run loop of
    `dataset-worker run`: claims, the handler, outcomes) until none is left. Processes running
    this at once share one queue, as `run` processes on one database do."""
    from sqlalchemy import func, select
    from tests.support.jobs import new_worker

    import dataset_worker.worker.jobs.pack.job  # noqa: F401 - imported before the clock starts
    from dataset_worker.db.models import Job, JobState, JobType
    from dataset_worker.worker.runtime.config import WorkerConfig, choose_read_ahead
    from dataset_worker.worker.runtime.handlers import default_handlers
    from dataset_worker.worker.runtime.monitor import JobMonitor
    from dataset_worker.worker.runtime.thread import ThreadResult, WorkerThread

    config = WorkerConfig(
        concurrency=threads,
        enable_scan=False,
        enable_dag=False,
        exit_on_complete=True,
        exit_on_error=True,
        min_interval=0.05,
        max_interval=0.5,
        attachments=(attachment,),
    )
    # No completion hooks (the auto chain's daggen is measured as a phase of its own), and no
    # pause monitor running: nothing pauses a bench job.
    workers = [
        WorkerThread(
            db,
            config,
            default_handlers(),
            new_worker(db),
            threading.Event(),
            JobMonitor(db),
            read_ahead=choose_read_ahead(threads),
        )
        for _ in range(threads)
    ]
    results: list[ThreadResult] = []
    pool = [threading.Thread(target=lambda w=w: results.append(w.run())) for w in workers]
    started, cpu = time.perf_counter(), _cpu()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    failed = [r.error for r in results if r.error is not None]
    if failed:
        raise RuntimeError(f"pack failed: {failed[0]}")
    ids = [w.worker_id for w in workers]
    with db.read() as session:
        done = session.scalar(
            select(func.count()).where(
                Job.type == JobType.PACK,
                Job.state == JobState.COMPLETE,
                Job.last_worker_id.in_(ids),
            )
        )
    return {"files": files, "jobs": done, "_started": started, "_cpu": cpu}


# ---------------------------------------------------------------- the parent


@dataclass
class Figures:
    wall: float
    cpu: float
    rss_mib: float
    files: int = 0
    jobs: int = 0

    @property
    def rate(self) -> float:
        return self.files / self.wall if self.wall else 0.0


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[str, Figures]:
    """Run a child to its end; its stdout, and its wall, CPU and peak RSS (from wait4)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env or _env(), cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return stdout, Figures(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


ROOT = BENCH_DIR.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("COLUMNS", None)
    return env


def phase(name: str, **options: object) -> Figures:
    return _phase(name, options)[0]


GENERATED: list[str] = []  # with --generated: the spec every child phase gets


def _phase(name: str, options: dict[str, object]) -> tuple[Figures, dict[str, Any]]:
    command = [sys.executable, str(Path(__file__).resolve()), "--phase", name]
    command += [arg for spec in GENERATED for arg in ("--spec", spec)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    stdout, usage = run_measured(command)
    result = json.loads(stdout.strip().splitlines()[-1])
    # The phase's own wall and CPU (imports and set-up excluded); the whole child's peak RSS.
    figures = Figures(
        result.get("w", result["wall"]),
        result["cpu"],
        usage.rss_mib,
        result.get("files", 0),
        result.get("jobs", 0),
    )
    return figures, result


def pack_in_processes(url: str, processes: int) -> Figures:
    """The pack jobs split over `processes` single-threaded processes running at once (what
    `dataset-worker run` on the same database from several processes does): from the first
    start to the last end of their packing."""
    results: list[tuple[Figures, dict[str, Any]]] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(_phase("pack", {"url": url}))
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=one) for _ in range(processes)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    start = min(r["start"] for _, r in results)
    end = max(r["end"] for _, r in results)
    return Figures(
        end - start,
        sum(f.cpu for f, _ in results),
        max(f.rss_mib for f, _ in results),
        results[0][0].files,
        sum(f.jobs for f, _ in results),
    )


class Databases:
    """Fresh databases of one kind: SQLite files, or PostgreSQL databases made from a template."""

    def __init__(self, kind: str, work: Path, server: str) -> None:
        self.kind = kind
        self.work = work
        self.server = server.replace("postgresql+psycopg://", "postgresql://")
        self.made: list[str] = []

    def fresh(self, name: str, copy_of: str | None = None) -> str:
        if self.kind == "sqlite":
            path = self.work / f"{name}.db"
            if copy_of is not None:
                source = Path(copy_of.removeprefix("sqlite:///"))
                shutil.copyfile(source, path)
            return f"sqlite:///{path}"
        import psycopg

        db = f"dw_bench_{name}_{uuid.uuid4().hex[:8]}"
        template = f' TEMPLATE "{copy_of.rsplit("/", 1)[1]}"' if copy_of else ""
        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{db}"{template}')
        self.made.append(db)
        return f"postgresql+psycopg://{self.server.split('://', 1)[1].rsplit('/', 1)[0]}/{db}"

    def size(self, url: str) -> int:
        """Bytes the database takes (SQLite: its file and WAL)."""
        if self.kind == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
            wal = path.with_name(path.name + "-wal")
            return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as admin:
            row = admin.execute("SELECT pg_database_size(%s)", (url.rsplit("/", 1)[1],)).fetchone()
        assert row is not None
        return int(row[0])

    def drop(self, url: str) -> None:
        """Remove one database (its disk is needed for the next copy)."""
        if self.kind == "sqlite":
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
            return
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.made.remove(name)

    def empty_size(self) -> int:
        from dataset_worker.db import open_database

        url = self.fresh("empty")
        open_database(url).dispose()
        return self.size(url)

    def drop_all(self) -> None:
        if self.kind != "postgresql" or not self.made:
            return
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as admin:
            for db in self.made:
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def prepare_run(tree: Path, work: Path, url: str, max_size: int) -> Figures:
    env = _env()
    env["DATASET_WORKER_DATABASE_URL"] = url
    command = [
        sys.executable, "-m", "dataset_worker", "--state-dir", str(work / "state"),
        "prepare", str(tree), "--name", "bench", "--output", str(work / "cars"),
        "--max-size", str(max_size),
    ]  # fmt: skip
    _, figures = run_measured(command, env)
    return figures


def peer_run(tree: Path, work: Path) -> Figures:
    binary = PEER_DIR / "node_modules" / ".bin" / "ipfs-car"
    if not binary.exists():
        PEER_DIR.mkdir(exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(PEER_DIR), "--no-audit", "--no-fund", "ipfs-car@3"],
            check=True,
        )
    _, figures = run_measured([str(binary), "pack", str(tree), "--output", str(work / "peer.car")])
    return figures


def prepare_goals(
    dbs: Databases, tree: Path, work: Path, max_size: int, files: int, base: Figures, kind: str
) -> None:
    """`prepare` from scratch on a fresh database: its figures, bytes per file and goal lines."""
    scale = files / GOAL_FILES
    empty = dbs.empty_size()
    url = dbs.fresh("prepare")
    prep = prepare_run(tree, work, url, max_size)
    per_file = (dbs.size(url) - empty) / files
    print(line("prepare (whole run)", prep, files) + "  (RSS: its largest process)")
    print(f"  database: {per_file:.0f} bytes/file; CPU-s / floor = {prep.cpu / base.cpu:.2f}")
    print("  " + goal(f"prepare wall <= {60 * scale:.1f} s", prep.wall <= 60 * scale))
    print("  " + goal("CPU-s <= 4x floor", prep.cpu <= 4 * base.cpu))
    print("  " + goal("peak RSS <= 300 MiB", prep.rss_mib <= 300))
    if kind == "sqlite":
        print("  " + goal("SQLite <= 300 bytes/file", per_file <= 300))


def _empty(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()


def choose_max_size(total_bytes: int, given: int | None) -> int:
    """60 MiB as in the issue, smaller for small trees so there are at least 4 pack jobs."""
    if given:
        return given
    return max(2 * MIB, min(60 * MIB, total_bytes // 4))


def line(name: str, f: Figures, files: int) -> str:
    return (
        f"  {name:24s} {f.wall:8.2f} s wall {f.cpu:8.2f} CPU-s {files / f.wall:10,.0f} files/s "
        f"{f.rss_mib:7.0f} MiB peak RSS"
    )


def goal(text: str, ok: bool) -> str:
    return f"goal {text}: {'met' if ok else 'MISSED'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=GOAL_FILES)
    parser.add_argument("--folders", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-size", type=int, default=0, help="bytes (default: see above)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get(PG_ENV, PG_DEFAULT))
    parser.add_argument("--peer", action="store_true", help="also run ipfs-car (npm install)")
    parser.add_argument("--skip-prepare", action="store_true")
    parser.add_argument("--generated", action="store_true", help="made-up files, no tree")
    parser.add_argument("--no-threads", action="store_true", help="skip the 2-thread pack")
    parser.add_argument(
        "--no-processes", action="store_true", help="skip the 2-process pack (big runs)"
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="the floor and prepare only (big trees)"
    )
    # Child phases (internal).
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child_main(args)
        return
    if args.generated:
        GENERATED.append(f"{args.files},{args.folders},{args.seed}")
        source = generated_source(GENERATED[0])
        total = sum(source.size_of(index) for index in range(args.files))
        tree = Path(tempfile.mkdtemp(prefix="bench-smallfiles-generated-"))  # the storage path
        args.skip_prepare = True
    else:
        tree, total = make_tree(args.files, args.folders, args.seed)
    max_size = choose_max_size(total, args.max_size)
    scale = args.files / GOAL_FILES
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min); "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(
        f"tree: {args.files:,} files of 0-2 KiB in {args.folders:,} folders, {total / MIB:.0f} MiB;"
        f" max size {max_size / MIB:.1f} MiB; wall goals scaled by {scale:g}"
    )
    phase("floor", tree=tree)  # warms the page cache
    base = phase("floor", tree=tree)
    print(line("floor (walk+read+sha256)", base, args.files))
    if args.peer:
        work = Path(tempfile.mkdtemp(prefix="bench-smallfiles-peer-"))
        try:
            peer = peer_run(tree, work)
            print(line("ipfs-car pack (peer)", peer, args.files))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for kind in args.databases.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"bench-smallfiles-{kind}-"))
        dbs = Databases(kind, work, args.postgres_url)
        try:
            print(f"{kind}:")
            if args.prepare_only:
                prepare_goals(dbs, tree, work, max_size, args.files, base, kind)
                continue
            scanned = dbs.fresh("scan")
            scan = phase("scan", url=scanned, tree=tree, out=work / "out", max_size=max_size)
            print(line("scan", scan, args.files) + f"  -> {scan.jobs} pack jobs")
            out = work / "out"
            packs = {}
            for threads in (1,) if args.no_threads else (1, 2):
                url = dbs.fresh(f"pack{threads}", copy_of=scanned)
                packs[threads] = phase("pack", url=url, threads=threads)
                print(line(f"pack, concurrency {threads}", packs[threads], args.files))
                if threads == 1:
                    dag = phase("daggen", url=url)
                    print(line("daggen", dag, args.files))
                _empty(out)  # the CARs: only their disk counts
                dbs.drop(url)
            c1 = packs[1]
            per_job = c1.rate
            print(f"  pack per job {per_job:,.0f} files/s")
            if not args.no_processes:
                url2 = dbs.fresh("pack2p", copy_of=scanned)
                procs = pack_in_processes(url2, 2)
                print(line("pack, 2 processes", procs, args.files))
                _empty(out)
                dbs.drop(url2)
                ratio = procs.rate / c1.rate
                print(f"  concurrency 2 / 1 = {ratio:.2f} (processes)")
                print("  " + goal("concurrency 2 / 1 >= 1.7 (processes)", ratio >= 1.7))
            if 2 in packs:
                threads_ratio = packs[2].rate / c1.rate
                print(f"  concurrency 2 / 1 = {threads_ratio:.2f} (threads)")
                print("  " + goal("concurrency 2 / 1 >= 1.7 (threads)", threads_ratio >= 1.7))
            if not args.skip_prepare:
                prepare_goals(dbs, tree, work, max_size, args.files, base, kind)
            print("  " + goal("pack per job >= 25,000 files/s", per_job >= 25_000))
            print("  " + goal(f"daggen <= {10 * scale:.2f} s", dag.wall <= 10 * scale))
        finally:
            dbs.drop_all()
            shutil.rmtree(work, ignore_errors=True)
    if args.generated:
        shutil.rmtree(tree, ignore_errors=True)
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")


if __name__ == "__main__":
    main()
