"""How a request names a preparation (a name, or an id when all digits), and finding its row
with SQLAlchemy Core: the light counterpart of lookup.find_preparation for short reads, with
the same rules and the same errors (lookup.py uses them too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import select

from dataset_worker.db.tables import preparations
from dataset_worker.prep.errors import InvalidParameter, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Connection

MAX_ID = 2**63 - 1  # larger numbers cannot be ids (PostgreSQL bigint); they match nothing
# Longest preparation name or id a request may give: the width of the name column.
MAX_KEY_LENGTH = 255

_ROW = select(
    preparations.c.id, preparations.c.name, preparations.c.no_dag, preparations.c.auto_chain
)


class PreparationRow(NamedTuple):
    """The columns of a preparation that short reads need."""

    id: int
    name: str
    no_dag: bool
    auto_chain: bool


def is_all_digits(text: str) -> bool:
    """True for "123" (ASCII digits only): such a text is read as an id, never as a name."""
    return text.isascii() and text.isdigit()


def checked_key(name_or_id: str | int) -> str:
    """The key as text; a blank one raises InvalidParameter."""
    key = str(name_or_id)
    if not key.strip():
        raise InvalidParameter("a preparation name or id is required")
    return key


def not_found(key: str) -> NotFound:
    """The error for a key that names no preparation."""
    kind = "id" if is_all_digits(key) else "name"
    return NotFound(f'preparation "{key}" not found (no preparation has that {kind})')


def preparation_row(connection: Connection, name_or_id: str | int) -> PreparationRow:
    """The preparation named `name_or_id`, or with that id when it is all digits.

    Raises InvalidParameter for a blank key and NotFound naming what was asked for.
    """
    key = checked_key(name_or_id)
    if is_all_digits(key):
        if int(key) > MAX_ID:
            raise not_found(key)
        query = _ROW.where(preparations.c.id == int(key))
    else:
        query = _ROW.where(preparations.c.name == key)
    row = connection.execute(query).one_or_none()
    if row is None:
        raise not_found(key)
    return PreparationRow(*row)
