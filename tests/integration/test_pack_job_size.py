"""A pack job sizes up its ranges in SQL (`job_size`): the same count, data bytes and CAR
estimate as Singularity's per-range `toCarSize` summed in Python, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataset_worker.content.chunker import CHUNK_SIZE
from dataset_worker.db import Database
from dataset_worker.db.models import File, FileRange, Job, JobState, JobType
from dataset_worker.worker.jobs.carsize import EMPTY_CAR_HEADER_SIZE, to_car_size
from dataset_worker.worker.jobs.pack.job import JobSize, job_size

# Empty, unknown (-1), tiny, exactly one chunk, one byte over, several chunks.
LENGTHS = [0, -1, 1, 1000, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE + 7, 0, 2048]


def _job_with_ranges(db: Database, lengths: list[int]) -> int:
    with db.write() as session:
        job = Job(type=JobType.PACK, state=JobState.READY)
        session.add(job)
        session.flush()
        for index, length in enumerate(lengths):
            file = File(path=f"f{index}", hash="", size=length, last_modified_nano=0)
            session.add(file)
            session.flush()
            session.add(FileRange(offset=0, length=length, file_id=file.id, job_id=job.id))
        return job.id


def test_job_size_equals_the_per_range_estimate(db: Database) -> None:
    job = _job_with_ranges(db, LENGTHS)
    other = _job_with_ranges(db, [7 * CHUNK_SIZE])  # another job's ranges do not count
    expected = JobSize(
        len(LENGTHS),
        sum(max(length, 0) for length in LENGTHS),
        EMPTY_CAR_HEADER_SIZE + sum(to_car_size(length) for length in LENGTHS),
    )
    with db.read() as session:
        size = job_size(session, job)
        assert size == expected
        assert {type(value) for value in size} == {int}  # not PostgreSQL's Decimal sums
        assert job_size(session, other).ranges == 1


def test_a_job_without_ranges_is_an_empty_car(db: Database) -> None:
    job = _job_with_ranges(db, [])
    with db.read() as session:
        assert job_size(session, job) == JobSize(0, 0, EMPTY_CAR_HEADER_SIZE)
