"""CLI command: `dataset-worker fetch-piece BASE_URL PIECE_CID -o FILE` downloads one piece.

HEAD, then parallel byte ranges (as Boost does), resuming dropped transfers, and checks the bytes'
piece CID (v1 or v2) and length before the file gets its name. Exit code 0 on a verified piece,
1 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from dataset_worker.cli.common import fail, transfer_progress


def fetch_piece_command(
    base_url: Annotated[
        str, typer.Argument(help="The content provider, e.g. http://127.0.0.1:7777.")
    ],
    piece_cid: Annotated[
        str,
        typer.Argument(
            help="The piece CID: v1 (baga6ea4sea…) or v2 (bafkzcib…, FRC-0069, which also binds "
            "the payload length)."
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the piece (a CAR file).")
    ],
    connections: Annotated[
        int, typer.Option(min=1, max=32, help="Parallel connections (byte ranges).")
    ] = 5,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", metavar="FILE", help="Send this file's token as Bearer."),
    ] = None,
) -> None:
    """Download a piece by byte ranges over parallel connections and verify its piece CID."""
    from dataset_worker.provider.client import FetchError, fetch_piece
    from dataset_worker.provider.piececid import InvalidPieceCid, parse_piece_ref

    try:
        parse_piece_ref(piece_cid)
    except InvalidPieceCid as exc:
        fail(f"PIECE_CID: {exc}")
    if not base_url.startswith(("http://", "https://")):
        fail(f"BASE_URL must start with http:// or https://, got {base_url!r}")
    if output.is_dir():
        fail(f"-o {output}: is a directory; give the file to write")
    if not output.parent.is_dir():
        fail(f"-o {output}: the folder {output.parent} does not exist")
    token = _read_token(token_file) if token_file is not None else None
    with _progress(piece_cid) as (on_size, on_bytes):
        try:
            result = fetch_piece(
                base_url,
                piece_cid,
                output,
                connections=connections,
                token=token,
                on_size=on_size,
                on_bytes=on_bytes,
            )
        except FetchError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{output}: {exc.strerror or exc}")
    rate = result.size / max(result.seconds, 1e-9) / (1 << 20)
    retried = f", {result.retries} retried transfers" if result.retries else ""
    length = {
        "v2": ", length bound by the v2 CID,",
        "metadata": ", length as the provider records it,",
    }.get(result.length_check, "")
    typer.echo(
        f"{output}: {result.size} bytes, piece CID verified (piece size {result.piece_size})"
        f"{length} in {result.seconds:.2f}s ({rate:.0f} MiB/s{retried})"
    )


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        fail(f"--token-file: {path}: {exc.strerror or exc}")
    if not token:
        fail(f"--token-file: {path} is empty")
    return token


@contextmanager
def _progress(
    name: str,
) -> Iterator[tuple[Callable[[int], object] | None, Callable[[int], object] | None]]:
    """A download bar on stderr when a person watches it; nothing in pipes, logs and tests."""
    with transfer_progress() as bar:
        if bar is None:
            yield None, None
            return
        task = bar.add_task(name[:24] + "…", total=None)
        yield (lambda size: bar.update(task, total=size)), (lambda n: bar.advance(task, n))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("fetch-piece")(fetch_piece_command)
