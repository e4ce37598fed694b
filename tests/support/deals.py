"""Deal test helpers: a packed preparation served by a real content provider."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db import Database
from dataset_worker.db.models import Car, Deal
from tests.integration.provider_support import Provider, start_provider
from tests.support.preps import PackedPrep, packed_preparation

FILES: dict[str, int | bytes] = {"a.bin": 300_000, "b.bin": 700_000, "c/d.txt": 5_000}


@dataclass(frozen=True)
class Served:
    """A packed preparation, its piece CIDs and the content provider serving them."""

    prep: PackedPrep
    pieces: list[str]
    provider: Provider

    @property
    def url_template(self) -> str:
        return f"{self.provider.url}/piece/{{pieceCid}}"


@contextmanager
def served_preparation(
    db: Database, database_url: str, folder: Path, name: str = "dealt"
) -> Iterator[Served]:
    """Pack a small preparation (two data pieces and a DAG piece) and serve it."""
    prep = packed_preparation(db, folder, name, FILES, max_size="600KiB")
    with db.read() as session:
        pieces = [
            cid_to_str(c)
            for c in session.scalars(
                select(Car.piece_cid).where(Car.preparation_id == prep.id).order_by(Car.id)
            )
        ]
    provider = start_provider(database_url, folder)
    try:
        yield Served(prep, pieces, provider)
    finally:
        provider.stop()


def deal_rows(db: Database) -> list[Deal]:
    """Every deal row, by id."""
    with db.read() as session:
        return list(session.scalars(select(Deal).order_by(Deal.id)))
