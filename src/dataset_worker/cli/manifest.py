"""CLI command `prep manifest`: export a preparation as a super-manifest, JSON or CSV.

The dataset-description options are shared with `prepare --manifest`.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from dataset_worker.cli.common import fail
from dataset_worker.cli.prep import PrepArg, database, prep_app

# Imported inside the functions so that loading the CLI stays fast (see cli/common.py).
if TYPE_CHECKING:
    from dataset_worker.db import Database
    from dataset_worker.prep.manifest import ManifestRequest
    from dataset_worker.prep.manifest_meta import ManifestMetaInput

DatasetNameOpt = Annotated[
    str | None,
    typer.Option("--dataset-name", help="Dataset name (default: the preparation's name)."),
]
DescriptionOpt = Annotated[
    str | None, typer.Option("--description", help="What the dataset is (super-manifest).")
]
VersionOpt = Annotated[
    str | None,
    typer.Option("--version", help="Dataset version, typically a date (default: today, UTC)."),
]
LicenseOpt = Annotated[
    str | None,
    typer.Option("--license", help="SPDX license identifier or expression, e.g. CC-BY-4.0."),
]
ProjectUrlOpt = Annotated[
    str | None, typer.Option("--project-url", help="http(s) URL of the project behind the data.")
]
OpenWithOpt = Annotated[
    str | None,
    typer.Option("--open-with", help="What tool opens the data, e.g. 'web browser'."),
]
TagOpt = Annotated[
    list[str] | None,
    typer.Option("--tag", help="A tag (repeat for several; replaces the remembered ones)."),
]


def register(_app: typer.Typer) -> None:
    """Add `manifest` to the `prep` command group."""
    prep_app.command("manifest")(manifest_command)


def meta_input(
    dataset_name: str | None,
    description: str | None,
    version: str | None,
    license_: str | None,
    project_url: str | None,
    open_with: str | None,
    tags: list[str] | None,
) -> ManifestMetaInput:
    """The dataset description given on the command line (None: not given)."""
    from dataset_worker.prep.manifest_meta import ManifestMetaInput

    return ManifestMetaInput(
        dataset_name=dataset_name,
        description=description,
        version=version,
        license=license_,
        project_url=project_url,
        open_with=open_with,
        tags=tags or None,
    )


def manifest_command(
    ctx: typer.Context,
    prep: PrepArg,
    fmt: Annotated[
        str,
        typer.Option("--format", metavar="FORMAT", help="super-manifest (default), json or csv."),
    ] = "super-manifest",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write here (default: stdout)."),
    ] = None,
    dataset_name: DatasetNameOpt = None,
    description: DescriptionOpt = None,
    version: VersionOpt = None,
    license_: LicenseOpt = None,
    project_url: ProjectUrlOpt = None,
    open_with: OpenWithOpt = None,
    tags: TagOpt = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            metavar="URL",
            help="csv: content provider base URL; each row's url is URL/piece/<pieceCid>.",
        ),
    ] = None,
    piece_cid_version: Annotated[
        int,
        typer.Option(
            "--piece-cid-version",
            metavar="N",
            help="csv: 2 puts the v2 piece CID (FRC-0069) in each url instead of the v1 one.",
        ),
    ] = 1,
) -> None:
    """Export the preparation: super-manifest (Filecoin data-prep standard), json or csv.

    The super-manifest needs --description, --license, --project-url and --open-with once;
    the preparation remembers them (and every other field given) for later exports.
    """
    from dataset_worker.prep.manifest import ManifestRequest, parse_format

    meta = meta_input(dataset_name, description, version, license_, project_url, open_with, tags)
    with database(ctx) as db:
        request = ManifestRequest(parse_format(fmt), meta, public_url, piece_cid_version)
        write_export(db, prep, request, output)
    if output is not None:
        typer.echo(f'wrote {request.format} of "{prep}" to {output}', err=True)


def write_export(
    db: Database, prep: str | int, request: ManifestRequest, output: Path | None
) -> None:
    """Export to `output` (replaced only once complete) or to stdout."""
    from dataset_worker.prep.manifest import export_manifest

    if output is None:
        with _stdout() as out:
            export_manifest(db, prep, request, out)
        return
    with _replacing(output) as out:
        export_manifest(db, prep, request, out)


@contextlib.contextmanager
def _stdout() -> Iterator[TextIO]:
    """stdout as UTF-8 whatever the locale (names can be any Unicode)."""
    stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)
    try:
        yield stream
        stream.flush()
    finally:
        stream.detach()  # leave sys.stdout open


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[TextIO]:
    """A temporary file next to `path`, renamed onto it once written; removed on failure."""
    temp = path.with_name(f".{path.name}.part")
    try:
        stream = open(temp, "w", encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    try:
        with stream:
            yield stream
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
