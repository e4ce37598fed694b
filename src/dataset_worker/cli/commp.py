"""CLI command: `dataset-worker commp [--v2] FILE` prints the piece CID (and with --v2 the
FRC-0069 v2 piece CID, which binds the payload size) and sizes of a file's bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dataset_worker.cli.common import fail, file_progress, reading_regular_file
from dataset_worker.sizes import SizeError, format_size, is_power_of_two, parse_size

if TYPE_CHECKING:
    from dataset_worker.content.commp import CommPResult

READ_SIZE = 4 << 20  # one reused buffer: constant memory whatever the file size


def commp_command(
    file: Annotated[Path, typer.Argument(help="The file whose bytes form the piece (e.g. a CAR).")],
    min_piece_size: Annotated[
        str | None,
        typer.Option(
            "--min-piece-size",
            metavar="SIZE",
            help="Pad the piece up to at least this padded size, a power of two (e.g. 1MiB).",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object: pieceCid, payloadSize, pieceSize (and pieceCidV2).",
        ),
    ] = False,
    v2: Annotated[
        bool,
        typer.Option(
            "--v2",
            help="Also print the v2 piece CID (FRC-0069, bafkzcib…): the same commitment with "
            "the payload size (the file's bytes) and the piece size in it.",
        ),
    ] = False,
) -> None:
    """Print the Filecoin piece CID (commP), payload size and piece size of a file."""
    from dataset_worker.content.cid import cid_to_str, piece_cid
    from dataset_worker.content.commp import finalize
    from dataset_worker.content.piececid2 import piece_cid_v2

    minimum = _parse_min_piece_size(min_piece_size)
    result = _file_commp(file)
    commitment, piece_size = result.commitment, result.piece_size
    if minimum is not None:
        commitment, piece_size = finalize(result, minimum)
    cid = cid_to_str(piece_cid(commitment))
    cid_v2 = piece_cid_v2(cid, result.payload_size, piece_size) if v2 else None
    if as_json:
        record: dict[str, str | int] = {"pieceCid": cid}
        if cid_v2 is not None:
            record["pieceCidV2"] = cid_v2
        record |= {"payloadSize": result.payload_size, "pieceSize": piece_size}
        typer.echo(json.dumps(record))
    else:
        typer.echo(f"Piece CID:    {cid}")
        if cid_v2 is not None:
            typer.echo(f"Piece CID v2: {cid_v2}")
        typer.echo(f"Payload size: {result.payload_size}")
        typer.echo(f"Piece size:   {piece_size}")


def _parse_min_piece_size(text: str | None) -> int | None:
    from dataset_worker.content.commp import MAX_PIECE_SIZE, MIN_PIECE_SIZE

    if text is None:
        return None
    try:
        size = parse_size(text)
    except SizeError as exc:
        fail(f"--min-piece-size: {exc}")
    if not (MIN_PIECE_SIZE <= size <= MAX_PIECE_SIZE and is_power_of_two(size)):
        fail(
            f"--min-piece-size must be a power of two from {MIN_PIECE_SIZE} B to "
            f'{format_size(MAX_PIECE_SIZE)}, got "{text}" ({size} bytes)'
        )
    return size


def _file_commp(file: Path) -> CommPResult:
    """Stream the file through a CommP calculator; exits with a clear message on failure."""
    from dataset_worker.content.commp import (
        MAX_PAYLOAD,
        MAX_PIECE_SIZE,
        MIN_PAYLOAD,
        CommP,
        CommPError,
    )

    with reading_regular_file(file, buffering=0) as (stream, size):
        if size < MIN_PAYLOAD:
            fail(f"{file}: too small for a piece: {size} bytes, commP needs at least {MIN_PAYLOAD}")
        if size > MAX_PAYLOAD:
            fail(
                f"{file}: too large for one piece: {size} bytes, "
                f"at most {MAX_PAYLOAD} fit the {format_size(MAX_PIECE_SIZE)} piece limit"
            )
        calc = CommP()
        buffer = bytearray(READ_SIZE)
        view = memoryview(buffer)
        with file_progress(size, file.name) as advance:
            while n := stream.readinto(buffer):
                calc.update(view[:n])
                if advance is not None:
                    advance(n)
        try:
            return calc.digest()
        except CommPError as exc:  # the file changed size while being read
            fail(f"{file}: {exc}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("commp")(commp_command)
