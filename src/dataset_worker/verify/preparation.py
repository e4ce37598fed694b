"""Verify a whole preparation: every piece's CAR against its `cars` row and, with `deep`, every
file of the DAG against the source storage.

The database is read once, up front, into plain records; the files are then read with no
session open, so a long verification holds no transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.blockrows import block_rows
from dataset_worker.db.models import Car, Directory, PieceType, Storage
from dataset_worker.pieces.inline import InlinePieceStream, open_inline_piece
from dataset_worker.prep.lookup import find_preparation, single_source
from dataset_worker.storage import StorageError, open_source
from dataset_worker.verify.car import ExpectedPiece, check_piece
from dataset_worker.verify.remote import RemoteCars
from dataset_worker.verify.report import PieceResult, Problem, Report
from dataset_worker.verify.tree import BlockStore, compare_with_source

# The pack and daggen jobs seal pieces with the preparation's min piece size, or 1 MiB when it is
# 0 (Singularity's Preparation.GetMinPieceSize); the same rule must be used to re-derive them.
DEFAULT_MIN_PIECE_SIZE = 1 << 20


class VerifyUsageError(Exception):
    """The verification asked for cannot be done at all (e.g. --deep without a DAG)."""


class ProgressSink(Protocol):
    """Receives progress: a stage with its total bytes, then bytes done within it."""

    def stage(self, description: str, total: int) -> None:
        """A new stage starts."""

    def advance(self, n: int) -> None:
        """`n` more bytes of the current stage are done."""


@dataclass(frozen=True, slots=True)
class _PieceRow:
    car_id: int
    piece_type: PieceType
    expected: ExpectedPiece
    storage_type: str | None
    storage_root: str | None
    storage_path: str
    storage_config: dict[str, Any] | None = None  # where and how to reach a remote output


@dataclass(frozen=True, slots=True)
class _Plan:
    report: Report
    pieces: list[_PieceRow]
    no_dag: bool
    delete_after_export: bool
    source_type: str
    source_path: str
    root_directory_cid: bytes | None
    dag_root: bytes | None
    source_config: dict[str, Any] | None = None  # where and how to reach a remote source


def verify_preparation(
    db: Database, name_or_id: str, *, deep: bool = False, progress: ProgressSink | None = None
) -> Report:
    """Check every piece of the preparation (and with `deep` every file); returns the report.

    Raises the lookup's PrepError for an unknown preparation and VerifyUsageError when `deep`
    is asked of a preparation that has no DAG by design (--no-dag).
    """
    with db.read() as session:
        plan = _load(session, name_or_id, deep)
    if deep and plan.no_dag:
        raise VerifyUsageError(
            f'preparation "{plan.report.preparation_name}" was created with --no-dag: it has no '
            "DAG to rebuild files from, so --deep cannot be used (run verify without --deep)"
        )
    if deep and any(_is_inline(piece) for piece in plan.pieces):
        raise VerifyUsageError(
            f'preparation "{plan.report.preparation_name}" is inline: its pieces are rebuilt '
            "from the source files, so comparing the files with the source (--deep) would "
            "compare the source with itself (run verify without --deep: it rebuilds every "
            "piece and checks every block against its CID)"
        )
    report = plan.report
    store = BlockStore() if deep else None
    remote = RemoteCars(spool=deep)
    try:
        _check_pieces(db, plan, store, progress, remote)
        if deep and store is not None:
            _check_tree(plan, store, progress)
    finally:
        if store is not None:
            store.close()
        remote.close()
    return report


def _load(session: Session, name_or_id: str, deep: bool) -> _Plan:
    prep = find_preparation(session, name_or_id)
    attachment = single_source(prep)
    min_piece_size = prep.min_piece_size or DEFAULT_MIN_PIECE_SIZE
    counts = block_rows(session, Car.preparation_id == prep.id)
    rows = session.execute(
        select(Car, Storage.type, Storage.path, Storage.config)
        .outerjoin(Storage, Storage.id == Car.storage_id)
        .where(Car.preparation_id == prep.id)
        .order_by(Car.id)
    )
    pieces: list[_PieceRow] = []
    dag_root: bytes | None = None
    for car, storage_type, storage_root, storage_config in rows:
        expected = ExpectedPiece(
            piece_cid=car.piece_cid,
            piece_size=car.piece_size,
            root_cid=car.root_cid,
            file_size=car.file_size,
            # no-inline preparations keep no block rows, so there is nothing to count.
            block_rows=None if prep.no_inline else counts.get(car.id, 0),
            min_piece_size=min_piece_size,
        )
        pieces.append(
            _PieceRow(
                car.id,
                car.piece_type,
                expected,
                storage_type,
                storage_root,
                car.storage_path,
                storage_config,
            )
        )
        if car.piece_type is PieceType.DAG:
            dag_root = car.root_cid  # ordered by id: the newest DAG piece wins
    root_directory_cid = session.scalar(
        select(Directory.cid)
        .where(Directory.attachment_id == attachment.id, Directory.parent_id.is_(None))
        .order_by(Directory.id)
        .limit(1)
    )
    report = Report(prep.id, prep.name, deep, cid_to_str(dag_root) if dag_root else None)
    return _Plan(
        report=report,
        pieces=pieces,
        no_dag=prep.no_dag,
        delete_after_export=prep.delete_after_export,
        source_type=attachment.storage.type,
        source_path=attachment.storage.path,
        source_config=dict(attachment.storage.config or {}),
        root_directory_cid=root_directory_cid or None,
        dag_root=dag_root,
    )


def _is_inline(piece: _PieceRow) -> bool:
    """A piece with no CAR file by design: no output storage and no path."""
    return piece.storage_type is None and not piece.storage_path


def _check_pieces(
    db: Database,
    plan: _Plan,
    store: BlockStore | None,
    progress: ProgressSink | None,
    remote: RemoteCars,
) -> None:
    report = plan.report
    paths = {piece.car_id: _car_path(piece) for piece in plan.pieces}
    if progress is not None:
        total = sum(
            p.expected.file_size
            for p in plan.pieces
            if paths[p.car_id] is not None or _is_inline(p)
        )
        progress.stage("Reading CARs", total)
    for piece in plan.pieces:
        label = cid_to_str(piece.expected.piece_cid)
        path = paths[piece.car_id]
        if _is_inline(piece):
            _check_inline_piece(db, plan, piece, label, progress)
            continue
        if path is not None and _is_remote(piece):
            _check_remote_piece(plan, piece, label, store, progress, remote)
            continue
        if path is None:
            report.pieces.append(
                PieceResult(
                    piece.car_id,
                    piece.piece_type.value,
                    label,
                    None,
                    skipped="no CAR file: its output storage was removed",
                )
            )
            continue
        problems, readable = _file_problems(piece, path, label)
        report.problems.extend(problems)
        if not readable:
            report.pieces.append(
                PieceResult(
                    piece.car_id,
                    piece.piece_type.value,
                    label,
                    str(path),
                    problems=len(problems),
                )
            )
            continue
        checked = check_piece(
            path,
            piece.expected,
            on_block=partial(store.add_block, path) if store is not None else None,
            progress=progress.advance if progress is not None else None,
        )
        if store is not None:
            store.damaged.update(checked.damaged)
        report.problems.extend(checked.problems)
        report.pieces.append(
            PieceResult(
                piece.car_id,
                piece.piece_type.value,
                label,
                str(path),
                blocks=checked.blocks,
                bytes_read=checked.bytes_read,
                problems=len(problems) + len(checked.problems),
            )
        )


def _check_inline_piece(
    db: Database, plan: _Plan, piece: _PieceRow, label: str, progress: ProgressSink | None
) -> None:
    """Rebuild an inline piece from its rows and the source, and check it like a CAR file."""
    report = plan.report
    where = f"inline: rebuilt from {plan.source_path}"

    def opener() -> tuple[BinaryIO, int]:
        reader = open_inline_piece(db, piece.car_id)
        return cast(BinaryIO, InlinePieceStream(reader)), reader.size

    checked = check_piece(
        Path(where),
        piece.expected,
        progress=progress.advance if progress is not None else None,
        opener=opener,
    )
    report.problems.extend(checked.problems)
    report.pieces.append(
        PieceResult(
            piece.car_id,
            piece.piece_type.value,
            label,
            where,
            blocks=checked.blocks,
            bytes_read=checked.bytes_read,
            problems=len(checked.problems),
        )
    )


def _is_remote(piece: _PieceRow) -> bool:
    """A CAR on an S3 bucket or SFTP server rather than in a local folder."""
    return piece.storage_type not in (None, "local")


def _check_remote_piece(
    plan: _Plan,
    piece: _PieceRow,
    label: str,
    store: BlockStore | None,
    progress: ProgressSink | None,
    remote: RemoteCars,
) -> None:
    """Stream a CAR from its remote output and check it like a local one."""
    assert piece.storage_type is not None and piece.storage_root is not None
    url = remote.url(piece.storage_root, piece.storage_path)
    if piece.storage_path != label + ".car":
        # The writers only ever record `<piece CID>.car`; anything else could point elsewhere.
        problem = Problem(
            "car-name",
            f'the recorded CAR path "{piece.storage_path}" is not {label}.car',
            piece_cid=label,
            car_path=url,
        )
        plan.report.problems.append(problem)
        plan.report.pieces.append(
            PieceResult(piece.car_id, piece.piece_type.value, label, url, problems=1)
        )
        return
    opener, copy = remote.opener(
        piece.storage_type,
        piece.storage_root,
        piece.storage_config,
        piece.storage_path,
        piece.car_id,
    )
    checked = check_piece(
        Path(url),
        piece.expected,
        # Blocks are read back from the local copy when the files are rebuilt.
        on_block=partial(store.add_block, copy) if store is not None and copy else None,
        progress=progress.advance if progress is not None else None,
        opener=opener,
    )
    if store is not None:
        store.damaged.update(checked.damaged)
    # check_piece names a Path, which folds the "//" of "s3://": name the URL instead.
    plan.report.problems.extend(replace(p, car_path=url) for p in checked.problems)
    plan.report.pieces.append(
        PieceResult(
            piece.car_id,
            piece.piece_type.value,
            label,
            url,
            blocks=checked.blocks,
            bytes_read=checked.bytes_read,
            problems=len(checked.problems),
        )
    )


def _car_path(piece: _PieceRow) -> Path | None:
    """Where the CAR file lies, or None when the piece has none (inline preparations)."""
    if not piece.storage_path or piece.storage_root is None:
        return None
    return Path(piece.storage_root) / piece.storage_path


def _file_problems(piece: _PieceRow, path: Path, label: str) -> tuple[list[Problem], bool]:
    """Problems found without reading the CAR, and whether it can be read at all."""
    problems: list[Problem] = []
    if "/" in piece.storage_path or piece.storage_path in (".", ".."):
        # The writers only ever record a bare file name; anything else could point elsewhere.
        problems.append(
            Problem(
                "car-name",
                f'the recorded CAR path "{piece.storage_path}" is not a plain file name',
                piece_cid=label,
                car_path=str(path),
            )
        )
        return problems, False
    if piece.storage_type != "local":
        problems.append(
            Problem(
                "car-missing",
                f'the output storage type "{piece.storage_type}" cannot be read (only "local")',
                piece_cid=label,
                car_path=str(path),
            )
        )
        return problems, False
    expected_name = label + ".car"
    if path.name != expected_name:
        problems.append(
            Problem(
                "car-name",
                f"the CAR file is named {path.name}, but the recorded piece CID makes it "
                f"{expected_name}",
                piece_cid=label,
                car_path=str(path),
            )
        )
    if not path.is_file():
        problems.append(
            Problem(
                "car-missing",
                "the CAR file does not exist" if not path.exists() else "not a regular file",
                piece_cid=label,
                car_path=str(path),
            )
        )
        return problems, False
    return problems, True


def _check_tree(plan: _Plan, store: BlockStore, progress: ProgressSink | None) -> None:
    report = plan.report
    if plan.dag_root is None:
        report.problems.append(
            Problem(
                "dag-missing",
                "no DAG piece yet, so the files cannot be rebuilt: the directory nodes are only "
                "written by daggen; run `dataset-worker prep start-daggen "
                f"{report.preparation_name}` and let a worker finish it, then verify again",
            )
        )
        return
    if plan.root_directory_cid is not None and plan.root_directory_cid != plan.dag_root:
        report.problems.append(
            Problem(
                "dag-stale",
                f"the root directory is now {cid_to_str(plan.root_directory_cid)}, but the "
                f"newest DAG piece has root {cid_to_str(plan.dag_root)}: files were packed "
                "after the last daggen; run daggen again",
                block_cid=cid_to_str(plan.dag_root),
            )
        )
    try:
        source = open_source(plan.source_type, plan.source_path, plan.source_config)
    except StorageError as exc:
        report.problems.append(Problem("source-unreadable", str(exc)))
        return

    def total(size: int) -> None:
        if progress is not None:
            progress.stage("Comparing files", size)

    try:
        comparison = compare_with_source(
            store,
            plan.dag_root,
            source,
            source_may_be_gone=plan.delete_after_export,
            progress_total=total,
            progress=progress.advance if progress is not None else None,
        )
    except StorageError as exc:  # the source folder itself is gone
        report.problems.append(Problem("source-unreadable", str(exc)))
        return
    report.files = comparison.files
    report.files_skipped = comparison.skipped
    report.file_bytes = comparison.bytes_compared
    report.problems.extend(comparison.problems)
