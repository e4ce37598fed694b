"""Creating a preparation: Singularity's validation rules (reference spec §8.1), then one transaction.

A preparation here has one local source folder and one local output folder. Each becomes a
`storages` row named after the preparation ("<name>-source", "<name>-output"), attached to it,
and the source gets its root `directories` row, which the scan requires.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import (
    Directory,
    OutputAttachment,
    Preparation,
    SourceAttachment,
    Storage,
)
from dataset_worker.logs import log_event
from dataset_worker.prep.errors import Conflict, InvalidParameter
from dataset_worker.prep.lookup import is_all_digits
from dataset_worker.prep.views import (
    DEFAULT_MIN_PIECE_SIZE,
    CreatePreparationRequest,
    PreparationView,
)
from dataset_worker.sizes import (
    SizeError,
    format_size,
    is_power_of_two,
    next_power_of_two,
    parse_size,
)

logger = logging.getLogger(__name__)

MAX_PIECE_SIZE = 1 << 36  # 64 GiB, the largest Filecoin sector
# Storage names add "-source"/"-output" and must fit the 255-character name columns.
MAX_NAME_LENGTH = 240


@dataclass(frozen=True)
class SizeLimits:
    """The three sizes of a preparation, in bytes, after validation."""

    max_size: int
    piece_size: int
    min_piece_size: int


def validate_name(name: str) -> None:
    """Rule 1: a name is non-empty and not all digits (it would read as an id)."""
    if not name.strip():
        raise InvalidParameter("name must not be empty")
    if is_all_digits(name):
        raise InvalidParameter(
            f'name "{name}" must not be all digits (it would be confused with an id)'
        )
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidParameter(
            f"name must be at most {MAX_NAME_LENGTH} characters, got {len(name)}"
        )


def parse_size_field(field: str, value: str | int) -> int:
    """Parse one size field; a bad value raises InvalidParameter naming the field."""
    try:
        return parse_size(value)
    except SizeError as exc:
        raise InvalidParameter(f"{field}: {exc}") from None


def _is_empty(value: str | int | None) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def validate_sizes(
    max_size: str | int, piece_size: str | int | None, min_piece_size: str | int | None
) -> SizeLimits:
    """Rules 2-5 of spec §8.1, in order, with Singularity's integer arithmetic."""
    max_bytes = parse_size_field("maxSize", max_size)
    if _is_empty(piece_size):
        piece_bytes = next_power_of_two(max_bytes)
    else:
        assert piece_size is not None
        piece_bytes = parse_size_field("pieceSize", piece_size)
        if not is_power_of_two(piece_bytes):
            raise InvalidParameter(f"pieceSize must be a power of two, got {piece_bytes}")
    if piece_bytes > MAX_PIECE_SIZE:
        raise InvalidParameter(
            f"pieceSize must be at most 64 GiB ({MAX_PIECE_SIZE}), got {piece_bytes}"
        )
    if not max_bytes * 128 // 127 < piece_bytes:
        raise InvalidParameter(
            "maxSize needs to be reduced to leave space for padding: "
            f"maxSize * 128 / 127 must be less than pieceSize {piece_bytes} "
            f"({format_size(piece_bytes)}), but maxSize is {max_bytes} ({format_size(max_bytes)})"
        )
    min_text = DEFAULT_MIN_PIECE_SIZE if _is_empty(min_piece_size) else min_piece_size
    assert min_text is not None
    min_bytes = parse_size_field("minPieceSize", min_text)
    if min_bytes > piece_bytes:
        raise InvalidParameter(
            f"minPieceSize {min_bytes} must not be larger than pieceSize {piece_bytes}"
        )
    if not is_power_of_two(min_bytes):
        raise InvalidParameter(f"minPieceSize must be a power of two, got {min_bytes}")
    return SizeLimits(max_bytes, piece_bytes, min_bytes)


def resolve_folders(source: str, output: str | None) -> tuple[Path, Path]:
    """Rules 6-7 for local folders: the source exists; an output is required (no inline yet)."""
    if not source.strip():
        raise InvalidParameter("source must not be empty: give the folder to prepare")
    source_path = Path(source).resolve()
    if not source_path.is_dir():
        raise InvalidParameter(f'source "{source}" is not an existing directory')
    if output is None or not output.strip():
        raise InvalidParameter(
            "inline preparations (no output storage) are not supported yet: give an output folder"
        )
    output_path = Path(output).resolve()
    if output_path.exists() and not output_path.is_dir():
        raise InvalidParameter(f'output "{output}" exists and is not a directory')
    if output_path == source_path or source_path in output_path.parents:
        # The scan would pick up the CAR files the pack jobs write.
        raise InvalidParameter(
            f'output "{output}" must not be the source folder or inside it ("{source}")'
        )
    return source_path, output_path


def create_preparation(db: Database, req: CreatePreparationRequest) -> PreparationView:
    """Validate `req` (spec §8.1) and create the preparation, its storages, attachments and the
    source's root directory in one transaction. The output folder is created if missing (and
    removed again if the creation fails).

    Raises InvalidParameter for a broken rule and Conflict for a name already in use.
    """
    validate_name(req.name)
    limits = validate_sizes(req.max_size, req.piece_size, req.min_piece_size)
    source, output = resolve_folders(req.source, req.output)
    made = _missing_ancestors(output)
    try:
        view = db.run_write(lambda session: _insert(session, req, limits, source, output))
    except BaseException:
        for folder in made:
            _remove_if_empty(folder)
        raise
    log_event(logger, "preparation.created", id=view.id, preparation=view.name, source=str(source))
    return view


def _insert(
    session: Session, req: CreatePreparationRequest, limits: SizeLimits, source: Path, output: Path
) -> PreparationView:
    source_name, output_name = f"{req.name}-source", f"{req.name}-output"
    if session.scalar(select(Preparation.id).where(Preparation.name == req.name)) is not None:
        raise Conflict(f'a preparation named "{req.name}" already exists')
    for storage_name in (source_name, output_name):
        if session.scalar(select(Storage.id).where(Storage.name == storage_name)) is not None:
            raise Conflict(f'a storage named "{storage_name}" already exists')
    prep = Preparation(
        name=req.name,
        max_size=limits.max_size,
        piece_size=limits.piece_size,
        min_piece_size=limits.min_piece_size,
        no_dag=req.no_dag,
        no_inline=False,
        delete_after_export=req.delete_after_export,
    )
    source_storage = Storage(name=source_name, type="local", path=str(source), config={})
    output_storage = Storage(name=output_name, type="local", path=str(output), config={})
    source_attachment = SourceAttachment(storage=source_storage)
    prep.source_attachments.append(source_attachment)
    prep.output_attachments.append(OutputAttachment(storage=output_storage))
    session.add(prep)
    try:
        session.flush()
        session.add(Directory(name="", parent_id=None, attachment_id=source_attachment.id))
        session.flush()
    except IntegrityError:
        # Another process created the same name between our check and our insert.
        raise Conflict(f'a preparation named "{req.name}" or its storages already exist') from None
    _make_output(output)
    return PreparationView.from_model(prep)


def _make_output(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameter(f'cannot create output folder "{output}": {exc.strerror}') from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise InvalidParameter(f'output folder "{output}" is not writable')


def _missing_ancestors(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not ours to remove any more (not empty) or already gone
