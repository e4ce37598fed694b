"""/api/preparations/{name}/manifest: the preparation's super-manifest, JSON export or CSV.

The export is written to a spooled temporary file first (memory up to SPOOL_MEMORY, then disk),
then streamed: every parameter error is a clean 400 before any byte is sent, and a large export
never sits in memory whole.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Iterator
from typing import IO, Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from dataset_worker.api.errors import error_responses
from dataset_worker.api.routes.preparations import AppServices, Name
from dataset_worker.prep.manifest import ManifestRequest, export_manifest, parse_format
from dataset_worker.prep.manifest_meta import FIELDS, ManifestMetaInput

router = APIRouter(prefix="/api/preparations", tags=["preparations"])

SPOOL_MEMORY = 8 << 20
READ_CHUNK = 1 << 16
LIMIT = {api: limit for api, _attribute, _key, limit in FIELDS}


def _text(api: str, description: str) -> object:
    return Query(alias=api, max_length=LIMIT[api], description=description)


Format = Annotated[
    str,
    Query(
        max_length=32,
        description="super-manifest (Filecoin Data Preparation Manifest Specification v0), "
        "json (this project's full export) or csv (one row per piece, for deal tools).",
    ),
]
DatasetName = Annotated[
    str | None, _text("datasetName", "super-manifest: dataset name (default: the preparation's).")
]
Description = Annotated[str | None, _text("description", "super-manifest: what the dataset is.")]
Version = Annotated[
    str | None, _text("version", "super-manifest: dataset version (default: first export's date).")
]
License = Annotated[str | None, _text("license", "super-manifest: SPDX license expression.")]
ProjectUrl = Annotated[str | None, _text("projectUrl", "super-manifest: project http(s) URL.")]
OpenWith = Annotated[str | None, _text("openWith", "super-manifest: tool that opens the data.")]
Tags = Annotated[
    list[str] | None,
    Query(alias="tag", description="super-manifest: a tag; repeat for several (at most 32)."),
]
PublicUrl = Annotated[
    str | None,
    Query(
        alias="publicUrl",
        max_length=2048,
        description="csv: content provider base URL; each row's url is <publicUrl>/piece/<pieceCid>.",
    ),
]
PieceCidVersion = Annotated[
    int,
    Query(
        alias="pieceCidVersion",
        description="csv: 2 puts the FRC-0069 v2 piece CID in each row's url instead of the v1 "
        "one (the pieceCidV2 column is there either way).",
    ),
]

RESPONSES = {
    200: {
        "description": "The export. A super-manifest or json export is a JSON document; csv "
        "is text with the header pieceCid,pieceSize,payloadCid,carSize,url,pieceCidV2.",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    },
    **error_responses(400, 401, 404),
}


@router.get("/{name}/manifest", response_class=StreamingResponse, responses=RESPONSES)
def manifest(
    app: AppServices,
    name: Name,
    format: Format = "super-manifest",
    dataset_name: DatasetName = None,
    description: Description = None,
    version: Version = None,
    license: License = None,
    project_url: ProjectUrl = None,
    open_with: OpenWith = None,
    tags: Tags = None,
    public_url: PublicUrl = None,
    piece_cid_version: PieceCidVersion = 1,
) -> StreamingResponse:
    """Export the preparation. The super-manifest needs description, license, projectUrl and
    openWith once: every field given is remembered by the preparation for later exports (so
    this GET may update the stored dataset description), as is the dataset uuid."""
    meta = ManifestMetaInput(
        dataset_name=dataset_name,
        description=description,
        version=version,
        license=license,
        project_url=project_url,
        open_with=open_with,
        tags=tags,
    )
    request = ManifestRequest(parse_format(format), meta, public_url, piece_cid_version)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
    try:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        export_manifest(app.db, name, request, text)
        text.flush()
        text.detach()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    filename = f"{_safe(name)}.{request.format}.{request.format.extension}"
    return StreamingResponse(
        _chunks(spool),
        media_type=request.format.media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(READ_CHUNK):
            yield chunk


def _safe(name: str) -> str:
    """A file name made of [A-Za-z0-9._-] only (the header must not carry quotes or Unicode)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "preparation"
