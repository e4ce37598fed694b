"""The short key `car_blocks` rows are found by: 8 bytes of a CID's digest, indexed instead of
the whole CID (docs/architecture.md#the-car_blocks-table).

A B-tree entry of the whole 36-byte CID cost ~50 bytes per block on SQLite, a tenth of what a
tiny file costs the database; 8 digest bytes find the same rows at ~20, and a lookup confirms
each match on the whole CID, which the row holds. The expression is written with literal
numbers, never bound parameters, so that SQLite and PostgreSQL both see the index's own
expression in a query and use it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, func, literal_column

KEY_START = 5  # 1-based, as SQL's substr: after a CIDv1's version, codec, hash code and length
KEY_LENGTH = 8


def cid_key(cid: bytes) -> bytes:
    """The key of `cid`, as the index expression computes it (shorter for a short CID)."""
    return cid[KEY_START - 1 : KEY_START - 1 + KEY_LENGTH]


def key_of(column: SQLColumnExpression[bytes | None]) -> ColumnElement[bytes]:
    """The indexed expression over a CID column: substr(cid, 5, 8)."""
    return func.substr(column, literal_column(str(KEY_START)), literal_column(str(KEY_LENGTH)))


def cid_in(column: SQLColumnExpression[bytes | None], cids: Sequence[bytes]) -> ColumnElement[bool]:
    """`column IN cids`, found through the key index."""
    keys = sorted({cid_key(cid) for cid in cids})
    return and_(key_of(column).in_(keys), column.in_(list(cids)))
