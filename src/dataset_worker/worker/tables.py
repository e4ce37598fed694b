"""Core `Table` objects of the models, for executemany statements (Core, not ORM bulk)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from dataset_worker.db.models import Directory, File, FileRange

DIRECTORIES = cast(Table, Directory.__table__)
FILES = cast(Table, File.__table__)
FILE_RANGES = cast(Table, FileRange.__table__)
