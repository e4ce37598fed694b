"""Background verifications of preparations (`POST /api/preparations/{p}/verify`).

A verification runs `verify_preparation` in a thread of the server process that started it. Its
record is a JSON file, `<state dir>/verifications/<preparation id>/<id>.json`, rewritten as it
progresses, so every server process sharing the state dir (`serve --workers N`) answers for it
and the last results survive restarts. One at a time per preparation: the running one holds an
exclusive flock on `<preparation id>.lock`; a record still "running" whose lock is free belongs to
a process that stopped, and is reported as failed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from dataset_worker.db import Database
from dataset_worker.prep.errors import Conflict, InvalidParameter, NotFound
from dataset_worker.prep.lookup import find_preparation
from dataset_worker.prep.views import as_utc
from dataset_worker.private import private_dir

FOLDER = "verifications"
KEPT = 20  # records kept per preparation: older ones are removed when a new one starts
PROGRESS_WRITE_SECONDS = 0.5  # progress is rewritten at most this often: it is a whole file
_ID = re.compile(r"^[0-9a-f]{32}$")
RUNNING, CLEAN, PROBLEMS, FAILED = "running", "clean", "problems", "failed"
INTERRUPTED = "the server process running this verification stopped before it finished"


@dataclass(frozen=True, slots=True)
class Target:
    """The preparation a verification is about."""

    id: int
    name: str
    created_at: str  # tells a preparation from a later one that got the same id back

    def owns(self, record: dict[str, Any]) -> bool:
        """True when the record is about this preparation, not an earlier one with its id."""
        return bool(record["preparation"].get("createdAt") == self.created_at)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _folder(state_dir: Path, preparation_id: int) -> Path:
    return state_dir / FOLDER / str(preparation_id)


def _write(path: Path, record: dict[str, Any]) -> None:
    """Replace the record atomically: readers in other processes never see half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    temporary.write_text(json.dumps(record, ensure_ascii=False))
    os.replace(temporary, path)


def find_target(db: Database, name_or_id: str, *, deep: bool) -> Target:
    """The preparation to verify; InvalidParameter when `deep` is asked of a --no-dag one."""
    with db.read() as session:
        prep = find_preparation(session, name_or_id)
        if deep and prep.no_dag:
            raise InvalidParameter(
                f'deep: preparation "{prep.name}" was created with --no-dag, so it has no DAG '
                "to rebuild files from; verify it with deep false",
                field="deep",
            )
        return Target(prep.id, prep.name, as_utc(prep.created_at).isoformat())


class _Lock:
    """An exclusive, non-blocking flock on a file; released when closed or the process ends."""

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        self._file: TextIO | None = path.open("a")

    def try_acquire(self) -> bool:
        """True when the lock is now held by this object."""
        assert self._file is not None
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        """Release the lock (closing the file releases it)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _is_running_somewhere(state_dir: Path, preparation_id: int) -> bool:
    lock = _Lock(state_dir / FOLDER / f"{preparation_id}.lock")
    try:
        return not lock.try_acquire()
    finally:
        lock.release()


class _Progress:
    """A ProgressSink that rewrites the record now and then."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self._path = path
        self._record = record
        self._written = 0.0

    def stage(self, description: str, total: int) -> None:
        """A new stage: written at once."""
        self._record["progress"] = {"stage": description, "done": 0, "total": total}
        self._flush(force=True)

    def advance(self, n: int) -> None:
        """More bytes done: written when the last write is old enough."""
        self._record["progress"]["done"] += n
        self._flush(force=False)

    def _flush(self, *, force: bool) -> None:
        moment = time.monotonic()
        if force or moment - self._written >= PROGRESS_WRITE_SECONDS:
            self._written = moment
            _write(self._path, self._record)


def start_verification(
    db: Database, state_dir: Path, name_or_id: str, *, deep: bool
) -> dict[str, Any]:
    """Start verifying in a background thread; the new record. Conflict while one runs."""
    target = find_target(db, name_or_id, deep=deep)
    lock = _Lock(state_dir / FOLDER / f"{target.id}.lock")
    if not lock.try_acquire():
        lock.release()
        raise Conflict(
            f'a verification of preparation "{target.name}" is already running; wait for it '
            "to finish"
        )
    try:
        folder = _folder(state_dir, target.id)
        private_dir(folder)
        _close_interrupted(folder)
        _prune(folder)
        record: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "preparation": {"id": target.id, "name": target.name, "createdAt": target.created_at},
            "deep": deep,
            "state": RUNNING,
            "startedAt": _now(),
            "finishedAt": None,
            "progress": None,
            "report": None,
            "error": None,
        }
        path = folder / f"{record['id']}.json"
        _write(path, record)
        thread = threading.Thread(
            target=_run, args=(db, path, record, lock), name="verify", daemon=True
        )
        thread.start()
    except BaseException:
        lock.release()
        raise
    return dict(record)


def _close_interrupted(folder: Path) -> None:
    """With the lock held nothing else runs: records still "running" were interrupted."""
    for path in folder.glob("*.json"):
        record = _read(path)
        if record["state"] == RUNNING:
            record.update(state=FAILED, error=INTERRUPTED, finishedAt=_now())
            _write(path, record)


def _prune(folder: Path) -> None:
    """Keep the newest KEPT - 1 records (the new one makes KEPT)."""
    paths = sorted(folder.glob("*.json"), key=lambda path: path.stat().st_mtime)
    for path in paths[: max(len(paths) - (KEPT - 1), 0)]:
        path.unlink(missing_ok=True)


def _run(db: Database, path: Path, record: dict[str, Any], lock: _Lock) -> None:
    """The thread: verify, write the final record, then release the lock (in that order, so a
    free lock always comes with a final record)."""
    from dataset_worker.verify.preparation import verify_preparation

    progress = _Progress(path, record)
    try:
        report = verify_preparation(
            db, str(record["preparation"]["id"]), deep=record["deep"], progress=progress
        )
        record["report"] = report.to_json()
        record["state"] = CLEAN if report.ok else PROBLEMS
    except Exception as exc:  # the record is how the page learns of any failure
        record["state"] = FAILED
        record["error"] = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
    finally:
        record["finishedAt"] = _now()
        try:
            _write(path, record)
        finally:
            lock.release()


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def get_verification(
    db: Database, state_dir: Path, name_or_id: str, verification_id: str
) -> dict[str, Any]:
    """One verification's record; NotFound for an unknown preparation or id."""
    target = find_target(db, name_or_id, deep=False)
    path = _folder(state_dir, target.id) / f"{verification_id}.json"
    if not _ID.match(verification_id) or not path.is_file() or not target.owns(_read(path)):
        raise NotFound(
            f'no verification "{verification_id}" of preparation "{target.name}" is known'
        )
    return _settled(state_dir, target.id, path)


def latest_verification(db: Database, state_dir: Path, name_or_id: str) -> dict[str, Any] | None:
    """The most recently started verification of the preparation, or None."""
    target = find_target(db, name_or_id, deep=False)
    folder = _folder(state_dir, target.id)
    paths = [p for p in folder.glob("*.json") if _ID.match(p.stem)] if folder.is_dir() else []
    records = [(record, path) for path in paths if target.owns(record := _read(path))]
    if not records:
        return None
    _, newest = max(records, key=lambda item: item[0]["startedAt"])
    return _settled(state_dir, target.id, newest)


def _settled(state_dir: Path, preparation_id: int, path: Path) -> dict[str, Any]:
    """The record; a "running" one whose lock is free was interrupted (re-read first: it may
    just have finished)."""
    record = _read(path)
    if record["state"] == RUNNING and not _is_running_somewhere(state_dir, preparation_id):
        record = _read(path)
        if record["state"] == RUNNING:
            record["state"] = FAILED
            record["error"] = INTERRUPTED
    return record
