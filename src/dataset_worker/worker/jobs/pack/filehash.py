"""Whole-file sha256 (`files.sha256`, for manifests) computed by the pack jobs.

A file of at most one chunk packed whole is one raw leaf: its CID's digest is the sha256 of its
bytes, so it is neither hashed again nor stored twice (`files.sha256` stays NULL; the exports
read the digest from the CID, `prep/manifest_rows.py` `file_sha256`). Every other file is
hashed; a SHA-256 state cannot be split or combined, so it is hashed in one pass from its first
byte:
- A file packed in one range of several blocks is hashed while the range is read (by the
  chunker's read-ahead thread when there is one), so manifests cost no second pass.
- A file split into several ranges that all sit in one job, one after the other (the common
  case: the scan puts consecutive ranges of a big file into the same job until it is full), is
  hashed across those ranges the same way.
- A split file whose ranges are spread over several jobs is read once more, whole, by the job
  that finalises it (the one whose recording gives the file its CID), after that recording
  commits. This was chosen over hashing split files in daggen because it also works for
  `--no-dag` preparations, the extra read is spread over the pack jobs (which run in parallel)
  instead of piling up in the one daggen job, and a file's hash lands right after its CID.
  An interrupted re-read is finished by the job's next run (its "already recorded" path).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from dataset_worker.content.chunker import CHUNK_SIZE, Digest
from dataset_worker.content.packer import BlockRecord, LeafBatch, PackedRange
from dataset_worker.db.models import File, FileRange
from dataset_worker.logs import log_event
from dataset_worker.storage import SourceStorage
from dataset_worker.storage.base import StorageError
from dataset_worker.worker.jobs.pack.spool import JobRange, PackSpool
from dataset_worker.worker.runtime.context import JobContext

READ_SIZE = 1 << 20


class RunningHash(Digest, Protocol):
    """A hashlib object: fed bytes, then asked for its digest."""

    def digest(self) -> bytes: ...


class FileHashes:
    """Follows the job's ranges in packing order and keeps one running hash: the current file's,
    as long as its ranges come in order from offset 0."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._file_id: int | None = None
        self._next_offset: int | None = None  # None: the range reads to end of file
        self._hash: RunningHash | None = None

    def digest_for(self, r: JobRange) -> RunningHash | None:
        """The running hash `r`'s bytes must feed, or None when its file cannot be hashed here
        (hashing is off, or an earlier range of the file was packed by another job), or needs
        no hash at all: a whole file of at most one chunk is one raw leaf, whose CID already is
        the sha256 of the file's bytes (most tiny files)."""
        if not self.enabled:
            return None
        if r.whole_file and 0 <= r.length <= CHUNK_SIZE:  # -1 (unknown size) is not
            self._hash = None
            return None
        if r.offset == 0:
            self._file_id, self._hash = r.file_id, hashlib.sha256()
        elif self._hash is None or self._file_id != r.file_id or self._next_offset != r.offset:
            self._hash = None
            return None
        self._next_offset = None if r.length == -1 else r.offset + r.length
        return self._hash

    def finish(self, packed: PackedRange) -> bytes | None:
        """After a range is packed: the file's sha256 if that range ended the file and every byte
        from offset 0 went through the hash; else None (always for a one-leaf file)."""
        r: JobRange = packed.key  # type: ignore[assignment]
        if self._hash is None or self._file_id != r.file_id:
            return None
        if packed.cid is None:  # skipped as inaccessible: nothing was read
            self._hash = None
            return None
        if r.length != -1 and r.offset + r.length != r.file_size:
            return None  # more ranges of this file follow
        digest = self._hash.digest()
        self._hash = None
        return digest


class HashingSink:
    """The `PackSink` a pack job hands the packer: the spool, plus each completed file hash."""

    def __init__(self, spool: PackSpool, hashes: FileHashes) -> None:
        self._spool = spool
        self._hashes = hashes

    def add_block(self, record: BlockRecord, /) -> None:
        """Spool one block record."""
        self._spool.add_block(record)

    def add_range(self, packed: PackedRange, /) -> None:
        """Spool one range result with its file's sha256 when the range completed it."""
        self._spool.add_range(packed, sha256=self._hashes.finish(packed))

    def add_leaves(self, batch: LeafBatch, cids: list[bytes], car_offsets: list[int], /) -> None:
        """Spool a batch of one-leaf ranges: none of them completes a running hash (`digest_for`
        gave them none, which is what let them into a batch)."""
        self._spool.add_leaves(batch, cids, car_offsets)


def unhashed_split_files(ctx: JobContext) -> list[int]:
    """Split files with a range in this job that have their CID but no sha256 yet: what an
    interrupted run of this job left to hash."""
    with ctx.db.read() as session:
        ids = session.scalars(
            select(File.id)
            .join(FileRange, FileRange.file_id == File.id)
            .where(FileRange.job_id == ctx.job_id)
            .where(File.cid.is_not(None), File.sha256.is_(None))
            .where(or_(FileRange.offset > 0, FileRange.length != File.size))
            .distinct()
            .order_by(File.id)
        )
        return list(ids)


def hash_split_files(ctx: JobContext, source: SourceStorage, file_ids: Sequence[int]) -> int:
    """Read each of these finalised files whole and record its sha256; returns how many were
    recorded. A file that changed or vanished since it was packed keeps a NULL sha256 (a warning
    is logged): its bytes are no longer the packed ones."""
    recorded = 0
    for file_id in file_ids:
        with ctx.db.read() as session:
            row = session.execute(
                select(File.path, File.size, File.last_modified_nano).where(
                    File.id == file_id, File.sha256.is_(None)
                )
            ).one_or_none()
        if row is None:
            continue  # hashed meanwhile (another run of this job) or deleted
        path, size, mtime_ns = row
        digest = _read_digest(ctx, source, path, size, mtime_ns)
        if digest is None:
            continue
        _store(ctx, file_id, digest)
        log_event(ctx.logger, "pack.file_hashed", job=ctx.job_id, file=file_id, bytes=size)
        recorded += 1
    return recorded


def _store(ctx: JobContext, file_id: int, digest: bytes) -> None:
    def write(session: Session) -> None:
        session.execute(
            update(File).where(File.id == file_id, File.sha256.is_(None)).values(sha256=digest)
        )

    ctx.db.run_write(write)


def _read_digest(
    ctx: JobContext, source: SourceStorage, path: str, size: int, mtime_ns: int
) -> bytes | None:
    """sha256 of the file as scanned, or None if it is no longer that file."""
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(READ_SIZE))
    total = 0
    try:
        stream = source.open_range(path, 0, size=size, mtime_ns=mtime_ns)
        try:
            while True:
                ctx.check_cancelled()
                got = stream.readinto(buffer)
                if not got:
                    break
                digest.update(buffer[:got])
                total += got
        finally:
            stream.close()
    except (StorageError, OSError) as exc:  # SourceChangedError is a StorageError
        _warn_unhashed(ctx, path, str(exc))
        return None
    if size >= 0 and total != size:
        _warn_unhashed(ctx, path, f"read {total} bytes, the scan saw {size}")
        return None
    return digest.digest()


def _warn_unhashed(ctx: JobContext, path: str, reason: str) -> None:
    log_event(
        ctx.logger,
        "pack.file_hash_skipped",
        logging.WARNING,
        job=ctx.job_id,
        path=path,
        reason=reason,
    )
