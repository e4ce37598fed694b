"""Whole-file sha256 in the pack path: the chunker feeds the digest, the chain follows a file's
ranges in order, and the spool carries the result to the recording transaction."""

from __future__ import annotations

import functools
import hashlib
import io

import pytest

from dataset_worker.content.car import CarWriter
from dataset_worker.content.chunker import CHUNK_SIZE, RangeChunker
from dataset_worker.content.cid import dag_pb_cid, raw_cid
from dataset_worker.content.packer import PackedRange, RangeSource, write_ranges
from dataset_worker.prep.manifest_rows import file_sha256
from dataset_worker.worker.jobs.pack.filehash import FileHashes, HashingSink
from dataset_worker.worker.jobs.pack.spool import JobRange, PackSpool
from tests.support.jobs import pseudo_random_bytes

DATA = pseudo_random_bytes(3 * (1 << 20) + 12345, seed=7)


@pytest.mark.parametrize("read_ahead", [True, False])
def test_the_chunker_feeds_every_byte_of_the_range_to_the_digest(read_ahead: bool) -> None:
    digest = hashlib.sha256()
    stream = io.BytesIO(DATA)
    stream.seek(1000)
    chunker = RangeChunker(stream, 1000, len(DATA) - 1000, read_ahead=read_ahead, digest=digest)
    for _ in chunker:
        pass
    assert digest.digest() == hashlib.sha256(DATA[1000:]).digest()


def _range(range_id: int, offset: int, length: int, file_id: int = 1, size: int = 100) -> JobRange:
    return JobRange(range_id, offset, length, file_id, f"f{file_id}", size, 0, None)


def _feed(hashes: FileHashes, r: JobRange, data: bytes, *, skipped: bool = False) -> bytes | None:
    digest = hashes.digest_for(r)
    if digest is not None and not skipped:
        digest.update(memoryview(data[r.offset : r.offset + max(r.length, 0)]))
    cid = raw_cid(data[r.offset : r.offset + max(r.length, 0)])  # a one-leaf range's CID
    return hashes.finish(PackedRange(r, None if skipped else cid, r.length))


def test_a_file_in_consecutive_ranges_of_one_job_gets_its_whole_hash() -> None:
    data = bytes(range(100))
    hashes = FileHashes(enabled=True)
    assert _feed(hashes, _range(1, 0, 40), data) is None
    assert _feed(hashes, _range(2, 40, 40), data) is None
    assert _feed(hashes, _range(3, 80, 20), data) == hashlib.sha256(data).digest()


def test_a_whole_file_of_several_blocks_and_an_unknown_length_file_are_hashed() -> None:
    data = bytes(CHUNK_SIZE + 1)
    hashes = FileHashes(enabled=True)
    whole = _range(1, 0, len(data), size=len(data))
    assert _feed(hashes, whole, data) == hashlib.sha256(data).digest()
    assert _feed(hashes, _range(2, 0, -1, file_id=2, size=-1), b"") == hashlib.sha256().digest()


def test_a_one_leaf_file_is_not_hashed_its_raw_cid_is_its_sha256() -> None:
    hashes = FileHashes(enabled=True)
    r = _range(1, 0, 3, size=3)
    assert hashes.digest_for(r) is None  # no running hash: the leaf's CID is the hash
    assert hashes.finish(PackedRange(r, raw_cid(b"abc"), 3)) is None  # nothing stored twice
    assert file_sha256(None, raw_cid(b"abc"), True) == hashlib.sha256(b"abc").digest()
    assert file_sha256(None, raw_cid(b"abc"), False) is None  # the preparation does not hash
    assert file_sha256(None, dag_pb_cid(b"node"), True) is None  # not a raw leaf: not known
    assert file_sha256(b"s" * 32, raw_cid(b"abc"), True) == b"s" * 32  # stored wins


def test_a_file_whose_first_ranges_are_in_another_job_is_not_hashed() -> None:
    hashes = FileHashes(enabled=True)
    r = _range(5, 40, 60)
    assert hashes.digest_for(r) is None
    assert hashes.finish(PackedRange(r, b"cid", 60)) is None


def test_a_gap_or_another_file_breaks_the_chain() -> None:
    data = bytes(range(100))
    hashes = FileHashes(enabled=True)
    _feed(hashes, _range(1, 0, 40), data)
    assert hashes.digest_for(_range(2, 60, 40)) is None  # 40..60 is missing
    assert hashes.digest_for(_range(3, 0, 10, file_id=2, size=20)) is not None
    assert hashes.digest_for(_range(4, 10, 10, file_id=3, size=20)) is None


def test_a_skipped_range_gives_no_hash_and_hashing_off_gives_none() -> None:
    hashes = FileHashes(enabled=True)
    assert _feed(hashes, _range(1, 0, 100), bytes(100), skipped=True) is None
    off = FileHashes(enabled=False)
    assert off.digest_for(_range(1, 0, 100)) is None


def test_the_spool_carries_the_hash_of_the_range_that_completed_it() -> None:
    data = pseudo_random_bytes(5000, seed=3)
    first, second = _range(1, 0, 3000, size=5000), _range(2, 3000, 2000, size=5000)

    def open_at(offset: int) -> io.BytesIO:
        stream = io.BytesIO(data)
        stream.seek(offset)
        return stream

    hashes = FileHashes(enabled=True)
    sources = (
        RangeSource(r, r.offset, r.length, functools.partial(open_at, r.offset), digest=d)
        for r in (first, second)
        for d in [hashes.digest_for(r)]
    )
    with PackSpool() as spool:
        write_ranges(sources, CarWriter(io.BytesIO()), HashingSink(spool, hashes))
        ranges = list(spool.ranges())
    assert [r.sha256 for r in ranges] == [None, hashlib.sha256(data).digest()]


def test_the_spool_refuses_a_digest_of_the_wrong_size() -> None:
    with PackSpool() as spool, pytest.raises(ValueError, match="32 bytes"):
        spool.add_range(PackedRange(_range(1, 0, 100), b"cid", 100), sha256=b"short")
