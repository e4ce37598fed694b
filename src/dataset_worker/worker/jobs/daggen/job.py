"""The daggen job (docs/formats.md#dag-piece): the directory tree as a DAG piece whose CAR root is the root CID.

The CAR holds, for every directory of the attachment not yet exported (ordered by id), its own
node blocks sorted by CID bytes, then the split-file blocks it carries, sorted by CID bytes.
Directories whose CID is still the exported one are marked exported in the same transaction
that records the piece; one that changed meanwhile stays unexported for the next run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from dataset_worker.content.cid import EMPTY_FILE_CID, cid_to_str
from dataset_worker.db.models import Car, Directory, PieceType
from dataset_worker.logs import log_event
from dataset_worker.storage import choose_output
from dataset_worker.worker.jobs.attachment import (
    AttachmentSetup,
    JobSetupError,
    load_setup,
    lock_own_job,
    root_directory,
)
from dataset_worker.worker.jobs.bulk_insert import execute_many
from dataset_worker.worker.jobs.daggen.blocksort import SortedBlocks
from dataset_worker.worker.jobs.daggen.spool import DagSpool
from dataset_worker.worker.jobs.dirdata import build_node, decode_entries, extra_blocks, is_wide
from dataset_worker.worker.jobs.pieces import (
    CAR_BLOCK_INSERT,
    NoContentError,
    PieceWriter,
    SealedPiece,
    record_or_unpublish,
    recover_publications,
)
from dataset_worker.worker.jobs.widedir import build_from_rows, extra_blocks_of
from dataset_worker.worker.runtime.context import JobContext

DAG_MIN_CONTENT = 59  # only the header: nothing to export
DIRECTORY_BATCH = 200


class DagDisabledError(Exception):
    """The preparation has no_dag set (Singularity ErrDagDisabled)."""


class DagNotReadyError(Exception):
    """The root directory has no CID yet: no pack job has finished (ErrDagNotReady)."""


def run_daggen(ctx: JobContext) -> None:
    """Export the unexported directories of the job's attachment as one DAG piece."""
    started = time.monotonic()
    with ctx.db.read() as session:
        setup = load_setup(session, ctx.attachment_id)
        if setup.no_dag:
            raise DagDisabledError("dag generation is disabled for this preparation")
        root_cid = root_directory(session, ctx.attachment_id).cid
    if not root_cid:
        raise DagNotReadyError(
            "the dag is not ready: the root directory has no CID yet (no pack job has finished)"
        )
    outputs = setup.require_output()
    recover_publications(ctx.db, ctx.job_id, outputs)  # a killed run's unrecorded CAR
    target = (
        choose_output([(o, o.storage) for o in outputs], setup.min_piece_size)[0]
        if outputs
        else None  # inline: the DAG piece lives in car_blocks only
    )
    tag = f"daggen{ctx.job_id}"
    if target is not None:
        target.storage.remove_temps(tag)
    # The rows are only kept for inline preparations; spooled, so memory does not grow with
    # the number of directories.
    with DagSpool(keep_blocks=not setup.no_inline) as export:
        with PieceWriter(target, tag, root_cid) as writer:
            for cid, block in _directory_blocks(ctx, export):
                location = writer.car.write_block(cid, block)
                export.add_block(
                    cid, location.car_offset, location.car_block_length, location.varint, block
                )
            ctx.check_cancelled()
            try:
                # The temp-file path always applies to DAG pieces: pad like small data pieces.
                sealed = writer.seal(setup.min_piece_size, pad=True, min_content=DAG_MIN_CONTENT)
            except NoContentError:
                log_event(ctx.logger, "daggen.nothing_to_export", job=ctx.job_id)
                return
            storage_path = writer.publish(ctx.db, ctx.job_id)

        storage_id = target.storage_id if target is not None else None

        def record(session: Session) -> None:
            lock_own_job(session, ctx)
            _record(session, setup, export, sealed, root_cid, storage_id, storage_path)

        output = target.storage if target is not None else None
        record_or_unpublish(ctx.db, output, writer.publication, record)
    log_event(
        ctx.logger,
        "daggen.done",
        job=ctx.job_id,
        root_cid=cid_to_str(root_cid),
        piece_cid=cid_to_str(sealed.piece_cid),
        directories=export.directory_count,
        blocks=export.block_count,
        seconds=round(time.monotonic() - started, 3),
    )


def _directory_blocks(ctx: JobContext, export: DagSpool) -> Iterator[tuple[bytes, bytes]]:
    """Blocks of every unexported directory, ordered by directory id, read in batches."""
    last_id = 0
    while True:
        ctx.check_cancelled()
        with ctx.db.read() as session:
            rows = session.execute(
                select(Directory.id, Directory.cid, Directory.data)
                .where(
                    Directory.attachment_id == ctx.attachment_id,
                    Directory.exported.is_(False),
                    Directory.id > last_id,
                )
                .order_by(Directory.id)
                .limit(DIRECTORY_BATCH)
            ).all()
        if not rows:
            return
        for dir_id, cid, data in rows:
            last_id = dir_id
            if not cid:
                continue  # an empty directory: no node, never linked (docs/formats.md#dag-piece)
            if is_wide(data):
                yield from _wide_blocks(ctx, dir_id, cid)
            else:
                yield from _blocks_of(dir_id, cid, data)
            export.add_directory(dir_id, cid)


def _blocks_of(dir_id: int, cid: bytes, data: bytes | None) -> list[tuple[bytes, bytes]]:
    entries = decode_entries(data)
    node = build_node(entries)
    _check_root(dir_id, node.cid, cid)
    reals = sorted(dict(node.blocks).items())
    return list(_with_content(reals + extra_blocks(entries)))


def _wide_blocks(ctx: JobContext, dir_id: int, cid: bytes) -> Iterator[tuple[bytes, bytes]]:
    """A wide directory's blocks in the same order as `_blocks_of`, built from its rows as a
    stream and sorted on disk, so a folder of millions of entries is never held in memory."""
    with SortedBlocks() as reals, SortedBlocks() as extras:
        with ctx.db.read() as session:
            conn = session.connection()
            root = build_from_rows(conn, dir_id, reals.add)
            for extra_cid, block in extra_blocks_of(conn, dir_id):
                extras.add(extra_cid, block)
        _check_root(dir_id, root[0] if root else None, cid)
        yield from _with_content(itertools.chain(reals, extras))


def _check_root(dir_id: int, built: bytes | None, stored: bytes) -> None:
    if built != stored:
        what = cid_to_str(built) if built else "no node (no entries)"
        raise JobSetupError(
            f"directory {dir_id}: its stored entries build {what}, but the row "
            f"says {cid_to_str(stored)}"
        )


def _with_content(blocks: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
    """Blocks without the empty ones, except the empty file's (docs/formats.md#dag-piece)."""
    return ((c, b) for c, b in blocks if b or c == EMPTY_FILE_CID)


def _record(
    session: Session,
    setup: AttachmentSetup,
    export: DagSpool,
    sealed: SealedPiece,
    root_cid: bytes,
    storage_id: int | None,
    storage_path: str,
) -> None:
    car_id = session.execute(
        insert(Car)
        .values(
            piece_type=PieceType.DAG,
            piece_cid=sealed.piece_cid,
            piece_size=sealed.piece_size,
            root_cid=root_cid,
            file_size=sealed.file_size,
            min_piece_size_padding=0,
            storage_id=storage_id,
            storage_path=storage_path,
            num_of_files=0,
            preparation_id=setup.preparation_id,
            attachment_id=setup.attachment_id,
            job_id=None,
        )
        .returning(Car.id)
    ).scalar_one()
    conn = session.connection()
    for rows in export.block_batches():
        execute_many(conn, CAR_BLOCK_INSERT, [(*row, None, car_id, None) for row in rows])
    # Ascending ids, as the pack jobs lock them: no deadlock between the two.
    for directories in export.directory_batches():
        execute_many(
            conn,
            "UPDATE directories SET exported = ? WHERE id = ? AND cid = ?",
            [(True, dir_id, cid) for dir_id, cid in directories],
        )
