"""Exporting a preparation: the super-manifest, the project's own JSON, or a CSV for deal tools.

- `super-manifest`: the Filecoin Data Preparation Manifest Specification v0 document (see
  `supermanifest`), with the dataset description of `manifest_meta`.
- `json`: everything this project knows: the preparation, its pieces, every file with its
  ranges and their pieces (camelCase, as the rest of the API).
- `csv`: one row per piece: `pieceCid,pieceSize,payloadCid,carSize,url,pieceCidV2`; `url` is
  `<publicUrl>/piece/<pieceCid>` when a content-provider base URL is given, else empty (with
  piece CID version 2, `<publicUrl>/piece/<pieceCidV2>`). The v2 column comes last so tools
  that read the first five columns by position are not disturbed.
All three are written to a text stream as they are read from the database, files a page at a
time, so a preparation of millions of files exports in flat memory. Parameters are checked
before anything is written.
"""

from __future__ import annotations

import csv
import json
import uuid as uuid_module
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TextIO
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import Car, File, Preparation
from dataset_worker.prep.errors import InvalidParameter
from dataset_worker.prep.lookup import find_preparation, single_source
from dataset_worker.prep.manifest_meta import ManifestMetaInput, resolve_meta
from dataset_worker.prep.manifest_rows import FileRow, files_query, iter_files
from dataset_worker.prep.supermanifest import header, write_super_manifest
from dataset_worker.prep.views import PieceView, PreparationView, cid_text, piece_cid_v2_of

CSV_HEADER = ("pieceCid", "pieceSize", "payloadCid", "carSize", "url", "pieceCidV2")
PIECE_CID_VERSIONS = (1, 2)


class ManifestFormat(StrEnum):
    """The export formats."""

    SUPER_MANIFEST = "super-manifest"
    JSON = "json"
    CSV = "csv"

    @property
    def media_type(self) -> str:
        """The HTTP content type of the export."""
        return "text/csv" if self is ManifestFormat.CSV else "application/json"

    @property
    def extension(self) -> str:
        """The file name extension of the export."""
        return "csv" if self is ManifestFormat.CSV else "json"


def parse_format(value: str) -> ManifestFormat:
    """The format named `value`; InvalidParameter naming `format` and the choices otherwise."""
    try:
        return ManifestFormat(value.strip().lower())
    except ValueError:
        choices = ", ".join(f.value for f in ManifestFormat)
        raise InvalidParameter(f'format must be one of {choices}; got "{value}"') from None


@dataclass(frozen=True)
class ManifestRequest:
    """What to export: the format, the dataset description (super-manifest only), the
    content provider's base URL and the piece CID version its URLs use (csv only)."""

    format: ManifestFormat
    meta: ManifestMetaInput = field(default_factory=ManifestMetaInput)
    public_url: str | None = None
    piece_cid_version: int = 1

    def check(self) -> None:
        """Refuse parameters the format does not use, and a malformed public URL."""
        if self.meta.given() and self.format is not ManifestFormat.SUPER_MANIFEST:
            raise InvalidParameter(
                "datasetName, description, version, license, projectUrl, openWith and tags "
                f"describe a super-manifest; format {self.format} does not use them"
            )
        if self.public_url is not None:
            if self.format is not ManifestFormat.CSV:
                raise InvalidParameter(f"publicUrl is only used by format csv, not {self.format}")
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidParameter(
                    f'publicUrl must be an http:// or https:// URL, got "{self.public_url}"'
                )
        if self.piece_cid_version not in PIECE_CID_VERSIONS:
            raise InvalidParameter(f"pieceCidVersion must be 1 or 2, got {self.piece_cid_version}")
        if self.piece_cid_version != 1 and self.format is not ManifestFormat.CSV:
            raise InvalidParameter(
                f"pieceCidVersion is only used by format csv (its url column), not {self.format}"
            )


@dataclass(frozen=True)
class _Target:
    """The preparation being exported, as read once at the start."""

    id: int
    name: str
    attachment_id: int
    uuid: str | None
    meta: dict[str, Any] | None
    file_hash: bool  # the preparation hashes files (manifest_rows.file_sha256)


def export_manifest(db: Database, prep: str | int, request: ManifestRequest, out: TextIO) -> None:
    """Write the export of `prep` to `out`. Raises InvalidParameter / NotFound before writing
    anything. A super-manifest export remembers its dataset description (and the dataset uuid,
    made on first use) in the preparation."""
    request.check()
    with db.read() as session:
        target = _load(session, prep)
    if request.format is ManifestFormat.SUPER_MANIFEST:
        _export_super(db, target, request.meta, out)
        return
    with db.read() as session:
        if request.format is ManifestFormat.CSV:
            _write_csv(session, target, request, out)
        else:
            _write_json(session, target, out)


def _load(session: Session, key: str | int) -> _Target:
    prep = find_preparation(session, key)
    attachment = single_source(prep)
    return _Target(prep.id, prep.name, attachment.id, prep.uuid, prep.manifest_meta, prep.file_hash)


def _pieces(session: Session, prep_id: int) -> list[Car]:
    return list(session.scalars(select(Car).where(Car.preparation_id == prep_id).order_by(Car.id)))


def _export_super(db: Database, target: _Target, given: ManifestMetaInput, out: TextIO) -> None:
    meta = resolve_meta(target.meta, given, target.name)
    with db.read() as session:
        pieces = [
            (car.piece_cid, car.root_cid, piece_cid_v2_of(car))
            for car in _pieces(session, target.id)
        ]
    if not pieces:
        raise InvalidParameter(
            f'preparation "{target.name}" has no pieces yet: a super-manifest lists at least one '
            "(run its scan and pack jobs first)"
        )
    dataset_uuid = _remember(db, target, meta)
    with db.read() as session:
        fields = header(meta, dataset_uuid, len(pieces))
        write_super_manifest(
            session, out, fields, pieces, target.attachment_id, hashed=target.file_hash
        )


def _remember(db: Database, target: _Target, meta: dict[str, Any]) -> str:
    """Store the description for the next export and make the dataset uuid if there is none;
    returns the uuid (the one already stored wins a race between two first exports)."""

    def write(session: Session) -> str:
        if target.meta != meta:
            session.execute(
                update(Preparation)
                .where(Preparation.id == target.id)
                .values(manifest_meta=meta)
                .execution_options(synchronize_session=False)
            )
        session.execute(
            update(Preparation)
            .where(Preparation.id == target.id, Preparation.uuid.is_(None))
            .values(uuid=str(uuid_module.uuid4()))
            .execution_options(synchronize_session=False)
        )
        stored = session.scalar(select(Preparation.uuid).where(Preparation.id == target.id))
        assert stored is not None
        return stored

    if target.meta == meta and target.uuid is not None:
        return target.uuid
    return db.run_write(write)


def _write_csv(session: Session, target: _Target, request: ManifestRequest, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    base = request.public_url.rstrip("/") if request.public_url else None
    for car in _pieces(session, target.id):
        piece, piece_v2 = cid_to_str(car.piece_cid), piece_cid_v2_of(car)
        in_url = piece_v2 if request.piece_cid_version == 2 and piece_v2 else piece
        url = f"{base}/piece/{in_url}" if base else ""
        row = (piece, car.piece_size, cid_to_str(car.root_cid), car.file_size, url, piece_v2)
        writer.writerow(row)


def _write_json(session: Session, target: _Target, out: TextIO) -> None:
    prep = find_preparation(session, target.id)
    view = PreparationView.from_model(prep)
    out.write('{\n  "preparation": ')
    out.write(_dumps(view.model_dump(mode="json", by_alias=True)))
    out.write(f',\n  "uuid": {_dumps(prep.uuid)},\n  "pieces": [')
    for index, car in enumerate(_pieces(session, target.id)):
        piece = PieceView.from_model(car).model_dump(mode="json", by_alias=True)
        out.write(f"{',' if index else ''}\n    {_dumps(piece)}")
    out.write('\n  ],\n  "files": [')
    query = files_query().where(File.attachment_id == target.attachment_id)
    for index, row in enumerate(iter_files(session, query, hashed=prep.file_hash)):
        out.write(f"{',' if index else ''}\n    {_dumps(_file_json(row))}")
    out.write("\n  ]\n}\n")


def _file_json(row: FileRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "path": row.path,
        "size": row.size,
        "cid": cid_text(row.cid),
        "sha256": row.sha256.hex() if row.sha256 is not None else None,
        "ranges": [
            {
                "offset": r.offset,
                "length": r.length,
                "cid": cid_text(r.cid),
                "pieceCid": cid_text(r.piece_cid),
            }
            for r in row.ranges
        ],
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
