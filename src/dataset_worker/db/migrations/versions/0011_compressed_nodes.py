"""car_blocks.raw_block_zlib: a node's bytes zlib-compressed when that is much smaller

A DAG piece keeps each directory node's bytes in `car_blocks`, and for a dataset of tiny files
those are about a fifth of the database: every file's name and CID, once more. The names
compress well, so a node that zlib shrinks by an eighth or more is kept compressed in the new
column instead of `raw_block` (db/nodebytes.py). Existing rows are left as they are: both
columns are read. A downgrade puts the compressed nodes back into `raw_block` first, so it
loses no block.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BATCH = 1000  # rows decompressed per round trip by the downgrade


def upgrade() -> None:
    with op.batch_alter_table("car_blocks") as batch_op:
        batch_op.add_column(sa.Column("raw_block_zlib", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    connection = op.get_bind()
    blocks = sa.table(
        "car_blocks",
        sa.column("id", sa.BigInteger),
        sa.column("raw_block", sa.LargeBinary),
        sa.column("raw_block_zlib", sa.LargeBinary),
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(blocks.c.id, blocks.c.raw_block_zlib)
            .where(blocks.c.raw_block_zlib.is_not(None), blocks.c.id > last)
            .order_by(blocks.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            blocks.update().where(blocks.c.id == sa.bindparam("block_id")),
            [
                {"block_id": row.id, "raw_block": zlib.decompress(row.raw_block_zlib)}
                for row in rows
            ],
        )
        last = rows[-1].id
    # On SQLite the batch recreates the table from its reflection, which skips expression
    # indexes: take the CID-key index off around it, as 0008 made it.
    op.drop_index("ix_car_blocks_cid_key", table_name="car_blocks")
    with op.batch_alter_table("car_blocks") as batch_op:
        batch_op.drop_column("raw_block_zlib")
    op.create_index("ix_car_blocks_cid_key", "car_blocks", [sa.text("substr(cid, 5, 8)")])
