"""directory_entries: the entries of wide directories, one row each

A directory's entries lived only in its `data` blob, which every pack job that adds to it and
every daggen decode and rewrite whole: for a folder of a million files, gigabytes of memory and
a rebuild that grows with each job. Past a few thousand entries they now live in this table,
keyed and so stored in the order of their names' HAMT hash, to build the HAMT as a stream (docs/architecture.md#wide-directories).
Existing blobs stay valid; a directory moves here the next time a pack job adds to it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 00:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "directory_entries",
        sa.Column("directory_id", ID, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("cid", sa.LargeBinary(), nullable=False),
        sa.Column("tsize", sa.BigInteger(), nullable=False),
        sa.Column("extras", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["directory_id"],
            ["directories.id"],
            name=op.f("fk_directory_entries_directory_id_directories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("directory_id", "hash", "name", name=op.f("pk_directory_entries")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("directory_entries")
