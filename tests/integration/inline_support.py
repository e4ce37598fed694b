"""Helpers for the inline-piece tests: one tree prepared twice, inline and with CAR files.

`prepare_twins` runs the real scan, pack and daggen job bodies over the content provider's test
tree (nested folders, empty files, a file split across pieces) for an inline preparation (no
output) and then for a no-inline preparation with an output folder. Both must give the same
pieces; each inline row is paired with the CAR file the other one wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import Car, File, FileRange, JobState, JobType
from tests.integration.provider_support import EMPTY_FOLDERS, MAX_SIZE, TREE
from tests.support.jobs import add_job, make_local_preparation, run_job, scan_and_pack, write_files


@dataclass(frozen=True)
class Twin:
    """An inline piece and the CAR file of the same piece written by the other preparation."""

    cid: str
    piece_type: str
    piece_size: int
    file_size: int
    car_id: int
    car_file: Path
    files: tuple[str, ...]  # source files the inline piece reads leaves from

    @property
    def padded(self) -> bool:
        """Whether the CAR ends with zero padding up to piece size * 127/128."""
        return self.file_size == self.piece_size * 127 // 128


@dataclass(frozen=True)
class Twins:
    """The source folder and every piece pair."""

    source: Path
    twins: list[Twin]

    def with_file(self, path: str) -> Twin:
        """The first data piece that reads `path`."""
        return next(t for t in self.twins if path in t.files)


def _prepare(db: Database, name: str, source: Path, output: Path | None) -> None:
    rows = make_local_preparation(
        db, name, source, output, max_size=MAX_SIZE, no_inline=output is not None
    )
    packs = scan_and_pack(db, rows.attachment_id)
    assert [run.state for run in packs] == [JobState.COMPLETE] * len(packs)
    daggen = run_job(db, add_job(db, rows.attachment_id, JobType.DAGGEN))
    assert daggen.state is JobState.COMPLETE, daggen.error


def prepare_twins(database_url: str, folder: Path, *, drop_written: bool = False) -> Twins:
    """Prepare the tree inline and written; `drop_written` deletes the written pieces' rows
    afterwards (their files stay) so that only the inline rows can be served."""
    source, output = folder / "source", folder / "output"
    write_files(source, TREE)
    for empty in EMPTY_FOLDERS:
        (source / empty).mkdir(parents=True)
    db = Database(database_url)
    try:
        _prepare(db, "inline", source, None)
        _prepare(db, "written", source, output)
        with db.read() as session:
            cars = session.scalars(select(Car).order_by(Car.id)).all()
            inline = [car for car in cars if car.storage_id is None]
            written = {car.piece_cid: car for car in cars if car.storage_id is not None}
            assert len(inline) == len(written) == len(cars) // 2
            twins = [
                Twin(
                    cid_to_str(car.piece_cid),
                    str(car.piece_type),
                    car.piece_size,
                    car.file_size,
                    car.id,
                    output / written[car.piece_cid].storage_path,
                    tuple(
                        session.scalars(
                            select(File.path)
                            .join(FileRange, FileRange.file_id == File.id)
                            .where(FileRange.job_id == car.job_id)
                            .distinct()
                        )
                    ),
                )
                for car in inline
            ]
        if drop_written:
            with db.write() as session:
                session.execute(delete(Car).where(Car.storage_id.is_not(None)))
    finally:
        db.dispose()
    return Twins(source, twins)


def rewrite_in_place(path: Path, data: bytes, mtime_ns: int) -> None:
    """Give a file new bytes of the same size and set its mtime to `mtime_ns` (the scanned one):
    what the scan compares cannot tell the difference."""
    assert len(data) == path.stat().st_size
    with path.open("r+b") as stream:
        stream.write(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    assert path.stat().st_mtime_ns == mtime_ns
