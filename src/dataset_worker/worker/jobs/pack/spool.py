"""A pack job's results on disk until the recording transaction reads them back.

`write_ranges` hands over one block record per CAR block and one result per range. Kept as
Python objects they cost ~1 KB per file; here each becomes a compact binary record appended to
a temporary file (a few dozen bytes plus the CID, and the node bytes for dag-pb blocks), so a
job's memory stays flat whatever its number of files. The records are read back in order, as
many times as the recording transaction is retried.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Self

from dataset_worker.content.chunker import BlockKind
from dataset_worker.content.packer import BlockRecord, PackedRange

FILE_BUFFER = 1 << 16
NONE = -1  # stands for NULL in the integer fields

# car_offset, car_block_length, file_offset, file_id, cid length, varint length, raw_block length
_BLOCK = struct.Struct("<qIqqBBI")
# range id, file id, measured length, directory id, flags, cid length, path length
_RANGE = struct.Struct("<qqqqBBI")
_HAS_CID, _WHOLE_FILE, _UNKNOWN_LENGTH, _HAS_SHA256 = 1, 2, 4, 8
SHA256_SIZE = 32

BlockRow = tuple[bytes, int, int, bytes, bytes | None, int | None, int | None]
"""(cid, car_offset, car_block_length, varint, raw_block, file_offset, file_id)."""


@dataclass(frozen=True, slots=True)
class JobRange:
    """One range of the job with its file, as loaded before packing (the packer's range key)."""

    range_id: int
    offset: int
    length: int
    file_id: int
    path: str
    file_size: int
    mtime_ns: int
    directory_id: int | None
    source_hash: str = ""  # files.hash: the storage's version tag (S3 ETag), or ""

    @property
    def whole_file(self) -> bool:
        """The range covers its whole file (the file CID is the range CID); a range of unknown
        length (-1) always does."""
        return self.offset == 0 and (self.length == self.file_size or self.length == -1)


@dataclass(frozen=True, slots=True)
class SpooledRange:
    """A packed range as the recording transaction needs it."""

    range_id: int
    file_id: int
    cid: bytes | None
    length: int  # measured
    directory_id: int | None
    path: str
    whole_file: bool
    unknown_length: bool  # the scan did not know the size: the file is what was read
    sha256: bytes | None = None  # the whole file's, when this range completed its hash


class PackSpool:
    """A `PackSink` that appends to temporary files; a context manager that deletes them.

    Range keys must be the job's `JobRange`s. With `keep_blocks` False (no car_blocks rows are
    wanted) block records are dropped.
    """

    def __init__(self, *, keep_blocks: bool = True) -> None:
        self.keep_blocks = keep_blocks
        self.range_count = 0
        self.block_count = 0
        self._blocks: IO[bytes] = tempfile.TemporaryFile(buffering=FILE_BUFFER)
        self._ranges: IO[bytes] = tempfile.TemporaryFile(buffering=FILE_BUFFER)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the temporary files."""
        self._blocks.close()
        self._ranges.close()

    def add_block(self, record: BlockRecord, /) -> None:
        """Append one car_blocks row: leaves point into their file, nodes carry their bytes."""
        if not self.keep_blocks:
            return
        raw = record.raw_block if record.kind is BlockKind.NODE and record.raw_block else b""
        if record.kind is BlockKind.LEAF:
            job_range: JobRange = record.range_key  # type: ignore[assignment]
            file_id = job_range.file_id
            file_offset = NONE if record.file_offset is None else record.file_offset
        else:
            file_id = file_offset = NONE
        header = _BLOCK.pack(
            record.car_offset,
            record.car_block_length,
            file_offset,
            file_id,
            len(record.cid),
            len(record.varint),
            len(raw),
        )
        self._blocks.write(header + record.cid + record.varint + raw)
        self.block_count += 1

    def add_range(self, packed: PackedRange, /, sha256: bytes | None = None) -> None:
        """Append one range result with what the recording needs of its file; `sha256` is the
        whole file's hash when this range was its last and every byte before it was hashed."""
        job_range: JobRange = packed.key  # type: ignore[assignment]
        cid = packed.cid or b""
        path = job_range.path.encode("utf-8", "surrogatepass")
        if sha256 is not None and len(sha256) != SHA256_SIZE:
            raise ValueError(f"a sha256 digest has {SHA256_SIZE} bytes, got {len(sha256)}")
        flags = (
            (_HAS_CID if packed.cid is not None else 0)
            | (_WHOLE_FILE if job_range.whole_file else 0)
            | (_UNKNOWN_LENGTH if job_range.length == -1 else 0)
            | (_HAS_SHA256 if sha256 is not None else 0)
        )
        directory = NONE if job_range.directory_id is None else job_range.directory_id
        header = _RANGE.pack(
            job_range.range_id,
            job_range.file_id,
            packed.length,
            directory,
            flags,
            len(cid),
            len(path),
        )
        self._ranges.write(header + cid + path + (sha256 or b""))
        self.range_count += 1

    def blocks(self) -> Iterator[BlockRow]:
        """Every block row, in CAR order (NONE fields read back as None)."""
        stream = self._rewind(self._blocks)
        for _ in range(self.block_count):
            car_offset, block_length, file_offset, file_id, cid_len, varint_len, raw_len = (
                _BLOCK.unpack(_read(stream, _BLOCK.size))
            )
            tail = _read(stream, cid_len + varint_len + raw_len)
            yield (
                tail[:cid_len],
                car_offset,
                block_length,
                tail[cid_len : cid_len + varint_len],
                tail[cid_len + varint_len :] if raw_len else None,
                None if file_offset == NONE else file_offset,
                None if file_id == NONE else file_id,
            )

    def ranges(self) -> Iterator[SpooledRange]:
        """Every range result, in packing order."""
        stream = self._rewind(self._ranges)
        for _ in range(self.range_count):
            range_id, file_id, length, directory, flags, cid_len, path_len = _RANGE.unpack(
                _read(stream, _RANGE.size)
            )
            sha_len = SHA256_SIZE if flags & _HAS_SHA256 else 0
            tail = _read(stream, cid_len + path_len + sha_len)
            yield SpooledRange(
                range_id,
                file_id,
                tail[:cid_len] if flags & _HAS_CID else None,
                length,
                None if directory == NONE else directory,
                tail[cid_len : cid_len + path_len].decode("utf-8", "surrogatepass"),
                bool(flags & _WHOLE_FILE),
                bool(flags & _UNKNOWN_LENGTH),
                tail[cid_len + path_len :] if sha_len else None,
            )

    @staticmethod
    def _rewind(stream: IO[bytes]) -> IO[bytes]:
        stream.flush()
        stream.seek(0)
        return stream


def _read(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise RuntimeError(f"pack spool is truncated: wanted {size} bytes, got {len(data)}")
    return data
