"""Creating a preparation: Singularity's validation rules (docs/formats.md#preparation-sizes), then one transaction.

A preparation here has one local source folder and one local output folder. Each becomes a
`storages` row named after the preparation ("<name>-source", "<name>-output"), attached to it,
and the source gets its root `directories` row, which the scan requires.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dataset_worker.content.commp import MIN_PIECE_SIZE
from dataset_worker.db import Database, queue
from dataset_worker.db.models import (
    Directory,
    JobType,
    OutputAttachment,
    Preparation,
    SourceAttachment,
    Storage,
)
from dataset_worker.defaults import DEFAULT_MIN_PIECE_SIZE
from dataset_worker.logs import log_event
from dataset_worker.prep.errors import Conflict, InvalidParameter, InvalidParameters
from dataset_worker.prep.lookup import is_all_digits
from dataset_worker.prep.pathrules import check_path_text
from dataset_worker.prep.storage_refs import (
    StorageTarget,
    check_local_side,
    looks_like_reference,
    split_references,
)
from dataset_worker.prep.views import CreatePreparationRequest, PreparationView
from dataset_worker.sizes import (
    SizeError,
    format_size,
    in_unit,
    is_power_of_two,
    next_power_of_two,
    parse_size,
    size_unit,
)

logger = logging.getLogger(__name__)

MAX_PIECE_SIZE = 1 << 36  # 64 GiB, the largest Filecoin sector
# A name goes into URLs, file names, logs, metrics labels and terminal output: keep it plain.
MAX_NAME_LENGTH = 64
NAME_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
NAME_RULE = (
    f'a name is 1 to {MAX_NAME_LENGTH} characters from A-Z, a-z, 0-9, ".", "_" and "-", '
    'not starting with "." and not all digits'
)


@dataclass(frozen=True)
class SizeLimits:
    """The three sizes of a preparation, in bytes, after validation."""

    max_size: int
    piece_size: int
    min_piece_size: int


def validate_name(name: str) -> None:
    """Rule 1: a name is NAME_RULE (all digits would read as an id)."""
    if not name:
        raise InvalidParameter(f"name must not be empty: {NAME_RULE}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidParameter(
            f"name must be at most {MAX_NAME_LENGTH} characters, got {len(name)}: {NAME_RULE}"
        )
    bad = sorted({c for c in name if c not in NAME_CHARACTERS})
    if bad:
        # repr() shows a control character or a space as something visible, never raw.
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidParameter(f"name contains {shown}, which is not allowed: {NAME_RULE}")
    if name.startswith("."):
        raise InvalidParameter(f'name "{name}" must not start with ".": {NAME_RULE}')
    if is_all_digits(name):
        raise InvalidParameter(
            f'name "{name}" must not be all digits (it would be confused with an id): {NAME_RULE}'
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
    """Rules 2-5 of docs/formats.md#preparation-sizes, in order, with Singularity's integer arithmetic.

    Every message names the field the user gave: a piece size derived from maxSize is reported
    as a problem with maxSize.
    """
    max_bytes = parse_size_field("maxSize", max_size)
    if _is_empty(piece_size):
        piece_bytes = next_power_of_two(max_bytes)
        _check_derived_piece_size(max_bytes, piece_bytes)
    else:
        assert piece_size is not None
        piece_bytes = parse_size_field("pieceSize", piece_size)
        _check_piece_size(piece_bytes)
    if not max_bytes * 128 // 127 < piece_bytes:
        derived = " (derived from maxSize: its next power of two)" if _is_empty(piece_size) else ""
        raise InvalidParameter(
            "maxSize needs to be reduced to leave space for padding: "
            f"maxSize * 128 / 127 must be less than pieceSize {piece_bytes} "
            f"({format_size(piece_bytes)}){derived}, "
            f"but maxSize is {max_bytes} ({format_size(max_bytes)}). "
            + _padding_way_out(max_size, max_bytes, piece_bytes, derived=bool(derived))
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
    if min_bytes < MIN_PIECE_SIZE:
        raise InvalidParameter(
            f"minPieceSize must be at least {MIN_PIECE_SIZE} bytes, got {min_bytes}: "
            f"{_SMALLEST_PIECE}, so no piece can be padded to less"
        )
    return SizeLimits(max_bytes, piece_bytes, min_bytes)


def largest_max_size(piece_bytes: int) -> int:
    """The largest maxSize whose CAR, Fr32-padded, still fits a piece of `piece_bytes`:
    the largest m with m * 128 // 127 < piece_bytes."""
    return (piece_bytes * 127 - 1) // 128


def _padding_way_out(typed: str | int, max_bytes: int, piece_bytes: int, *, derived: bool) -> str:
    """What to type instead, in the unit the user typed: the exact largest maxSize, a round
    value under it, and (for a derived piece size) the pieceSize that takes this maxSize."""
    unit, unit_bytes = size_unit(typed)
    largest = largest_max_size(piece_bytes)
    exact = in_unit(largest, unit, unit_bytes)
    text = f"The largest valid maxSize for a {format_size(piece_bytes)} piece is {exact}"
    if unit:
        text += f" ({largest} bytes)"
    rounded = _round_under(largest, unit, unit_bytes)
    if rounded is not None and rounded != exact:
        text += f", e.g. {rounded}"
    if derived:
        bigger = next_power_of_two(max_bytes * 128 // 127 + 1)
        if bigger <= MAX_PIECE_SIZE:
            text += (
                f"; or keep maxSize {in_unit(max_bytes, unit, unit_bytes)} and set pieceSize to "
                f"{in_unit(bigger, unit, unit_bytes)} (--piece-size)"
            )
    return text + "."


def _round_under(limit: int, unit: str, unit_bytes: int) -> str | None:
    """A round size at most `limit` bytes: whole or half units in the user's unit, or in the
    next smaller unit when that would lose more than a tenth."""
    step = max(unit_bytes // 2, 1)
    value = limit // step * step
    if value > 0 and value >= limit * 9 // 10:
        return in_unit(value, unit, unit_bytes)
    smaller = _SMALLER_UNIT.get(unit_bytes)
    return None if smaller is None else _round_under(limit, *smaller)


_SMALLER_UNIT = {
    **{1024 ** (k + 1): (("B", "KiB", "MiB", "GiB", "TiB")[k], 1024**k) for k in range(5)},
    **{1000 ** (k + 1): (("B", "KB", "MB", "GB", "TB")[k], 1000**k) for k in range(5)},
}


# Why pieces have a floor: commP is a binary tree of 32-byte nodes over Fr32-padded data.
_SMALLEST_PIECE = (
    f"the smallest Filecoin piece is {MIN_PIECE_SIZE} bytes "
    f"({MIN_PIECE_SIZE // 128 * 127} bytes of data after Fr32 padding)"
)
# The largest maxSize whose derived piece (64 GiB) still leaves room for the padding.
LARGEST_DERIVED_MAX_SIZE = (MAX_PIECE_SIZE * 127 - 1) // 128


def _check_piece_size(piece_bytes: int) -> None:
    """A pieceSize the user gave: a power of two from 128 bytes to 64 GiB."""
    if not is_power_of_two(piece_bytes):
        raise InvalidParameter(f"pieceSize must be a power of two, got {piece_bytes}")
    if piece_bytes > MAX_PIECE_SIZE:
        raise InvalidParameter(
            f"pieceSize must be at most 64 GiB ({MAX_PIECE_SIZE}), got {piece_bytes}"
        )
    if piece_bytes < MIN_PIECE_SIZE:
        raise InvalidParameter(
            f"pieceSize must be at least {MIN_PIECE_SIZE} bytes, got {piece_bytes}: "
            f"{_SMALLEST_PIECE}"
        )


def _check_derived_piece_size(max_bytes: int, piece_bytes: int) -> None:
    """No pieceSize given: it is maxSize's next power of two, so the limits fall on maxSize."""
    if piece_bytes > MAX_PIECE_SIZE:
        raise InvalidParameter(
            f"maxSize must be at most {LARGEST_DERIVED_MAX_SIZE} bytes "
            f"({format_size(LARGEST_DERIVED_MAX_SIZE)}), got {max_bytes}: a CAR file and its "
            "padding must fit one 64 GiB piece"
        )
    if piece_bytes < MIN_PIECE_SIZE:
        smallest = MIN_PIECE_SIZE // 2 + 1
        raise InvalidParameter(
            f"maxSize must be at least {smallest} bytes, got {max_bytes}: the piece size is "
            f"maxSize's next power of two, and {_SMALLEST_PIECE}"
        )


def relative_folder_problems(req: CreatePreparationRequest) -> list[InvalidParameter]:
    """One problem per relative folder (the HTTP API's rule: the server's cwd is not the
    client's); a storage reference (NAME[:/sub/path]) is no folder."""
    problems = []
    for field, value in (("source", req.source), ("output", req.output)):
        if looks_like_reference(value):
            continue  # NAME[:/sub/path]: must name a storage (create_preparation checks)
        if value is not None and value.strip() and not Path(value).is_absolute():
            problems.append(
                InvalidParameter(
                    f'{field} must be an absolute path, got "{value}": over HTTP a relative '
                    "path would be resolved against the server's working directory",
                    field=field,
                )
            )
    return problems


def resolve_folders(source: str, output: str | None) -> tuple[Path, Path | None]:
    """Rules 6-7 for local folders: the source exists; no output (None) makes an inline
    preparation, whose pieces are rebuilt from the source and `car_blocks` when served."""
    if not source.strip():
        raise InvalidParameter("source must not be empty: give the folder to prepare")
    check_path_text(source, "source")
    if output is not None:
        check_path_text(output, "output")
    source_path = Path(source).resolve()
    if not source_path.is_dir():
        raise InvalidParameter(f'source "{source}" is not an existing directory')
    if output is None or not output.strip():
        return source_path, None
    output_path = Path(output).resolve()
    if output_path.exists() and not output_path.is_dir():
        raise InvalidParameter(f'output "{output}" exists and is not a directory')
    if output_path == source_path or source_path in output_path.parents:
        # The scan would pick up the CAR files the pack jobs write.
        raise InvalidParameter(
            f'output "{output}" must not be the source folder or inside it ("{source}")'
        )
    return source_path, output_path


_SIZE_FIELDS = ("maxSize", "pieceSize", "minPieceSize")
_FOLDER_FIELDS = ("source", "output")


def check_request(
    req: CreatePreparationRequest,
    remote: Mapping[str, StorageTarget] | None = None,
    folder_problems: list[InvalidParameter] | None = None,
) -> tuple[SizeLimits, Path | None, Path | None]:
    """The name, size and folder rules, each group checked even when another fails, so one
    reply names every broken field; raises InvalidParameter (InvalidParameters for several).
    A side given in `remote` (a named non-local storage) has no folder (None). Problems with the
    folders found earlier (`folder_problems`: relative paths, unknown storages) stand for the
    folder group, reported with the name and size problems."""
    problems: list[InvalidParameter] = []
    limits = source = output = None
    try:
        validate_name(req.name)
    except InvalidParameter as exc:
        problems.append(_about(exc, ("name",)))
    try:
        limits = validate_sizes(req.max_size, req.piece_size, req.min_piece_size)
    except InvalidParameter as exc:
        problems.append(_about(exc, _SIZE_FIELDS))
    if folder_problems:
        problems.extend(folder_problems)
        if len(problems) == 1:
            raise problems[0]
        raise InvalidParameters(problems)
    try:
        if not remote:
            source, output = resolve_folders(req.source, req.output)
        else:
            if "source" not in remote:
                source = check_local_side("source", req.source)
            if "output" not in remote:
                output = check_local_side("output", req.output)
    except InvalidParameter as exc:
        problems.append(_about(exc, _FOLDER_FIELDS, default="output"))
    else:
        if req.delete_after_export and output is None and "output" not in (remote or {}):
            problems.append(
                InvalidParameter(
                    "deleteAfterExport needs an output: an inline preparation (no output) "
                    "rebuilds its pieces from the source files, so they must stay",
                    field="deleteAfterExport",
                )
            )
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise InvalidParameters(problems)
    assert limits is not None
    return limits, source, output


def _about(exc: InvalidParameter, fields: tuple[str, ...], default: str = "") -> InvalidParameter:
    """`exc` with its field set: the field its message starts with (every rule's message in this
    module names its field first), else `default` or the group's first field."""
    if exc.field is None:
        first = str(exc).split(" ", 1)[0].rstrip(":")
        exc.field = first if first in fields else default or fields[0]
    return exc


def create_preparation(
    db: Database,
    req: CreatePreparationRequest,
    *,
    strict_references: bool = False,
    absolute_folders: bool = False,
) -> PreparationView:
    """Validate `req` (docs/formats.md#preparation-sizes) and create the preparation, its storages, attachments and the
    source's root directory in one transaction. The output folder is created if missing (and
    removed again if the creation fails).

    Source and output may name storages (`NAME[:/sub/path]`, prep/storage_refs.py); with
    `strict_references` (HTTP) such a value must name an existing storage; with
    `absolute_folders` (HTTP) a folder must be an absolute path.
    Raises InvalidParameter for a broken rule (InvalidParameters naming every broken field) and
    Conflict for a name already in use.
    """
    folder_problems = relative_folder_problems(req) if absolute_folders else []
    remote: dict[str, StorageTarget] = {}
    if not folder_problems:
        try:
            src, out, remote = split_references(
                db, req.source, req.output, strict=strict_references
            )
        except InvalidParameter as exc:
            folder_problems = [_about(exc, _FOLDER_FIELDS, default="output")]
        else:
            req = req.model_copy(update={"source": src, "output": out})
    limits, source, output = check_request(req, remote, folder_problems)
    source_target = remote.get("source") or StorageTarget("local", str(source))
    output_target = remote.get("output") or (
        StorageTarget("local", str(output)) if output is not None else None  # None: inline
    )
    made = _missing_ancestors(output) if output is not None else []
    try:
        view = db.run_write(
            lambda session: _insert(session, req, limits, source_target, output_target)
        )
    except BaseException:
        for folder in made:
            _remove_if_empty(folder)
        raise
    log_event(
        logger,
        "preparation.created",
        id=view.id,
        preparation=view.name,
        source=source_target.describe(),
    )
    return view


def _insert(
    session: Session,
    req: CreatePreparationRequest,
    limits: SizeLimits,
    source: StorageTarget,
    output: StorageTarget | None,
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
        auto_chain=not req.no_auto,
        file_hash=not req.no_file_hash,
        auto_rescan=req.auto_rescan,
        uuid=str(uuid.uuid4()),  # the dataset's id in its manifests, kept from now on
        no_inline=False,
        delete_after_export=req.delete_after_export,
    )
    source_storage = Storage(
        name=source_name, type=source.type, path=source.path, config=dict(source.config)
    )
    source_attachment = SourceAttachment(storage=source_storage)
    prep.source_attachments.append(source_attachment)
    if output is not None:
        output_storage = Storage(
            name=output_name, type=output.type, path=output.path, config=dict(output.config)
        )
        prep.output_attachments.append(OutputAttachment(storage=output_storage))
    session.add(prep)
    try:
        session.flush()
        session.add(Directory(name="", parent_id=None, attachment_id=source_attachment.id))
        if prep.auto_chain:
            # The chain's first step, queued with the preparation (its completion queues the
            # rest: worker/jobs/chain.py).
            queue.insert_ready(session, JobType.SCAN, source_attachment.id)
        session.flush()
    except IntegrityError:
        # Another process created the same name between our check and our insert.
        raise Conflict(f'a preparation named "{req.name}" or its storages already exist') from None
    if output is not None and output.type == "local":
        _make_output(Path(output.path))
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
