"""file_ranges.car_offset: a range packed as one leaf keeps its block's place, not a car_blocks row

Most files of a dataset of small files are one raw leaf each: their `car_blocks` row repeated
the range's CID and length and cost ~90 bytes with its indexes, a fifth of what such a file
cost the database, and one more insert per file in the recording transaction (which on SQLite
holds the only write lock). The leaf's place in its job's CAR now sits on the range row
(docs/architecture.md#one-leaf-ranges), and a partial index finds one-leaf ranges by CID as
`ix_car_blocks_cid_key` finds blocks. Existing rows are left as they are: both forms are read.

The job index becomes `(job_id, id)`: a job's ranges in id order are its CAR's order, which pack
and inline rebuilds page through. With `job_id` alone, PostgreSQL answered "the first page of
this job's ranges by id" by walking the primary key over every range of the database (6 s per
job at 10M ranges).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

LEAF = sa.text("car_offset IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("file_ranges") as batch_op:
        batch_op.add_column(sa.Column("car_offset", sa.BigInteger(), nullable=True))
    op.drop_index("ix_file_ranges_job_id", table_name="file_ranges")
    op.create_index("ix_file_ranges_job_range", "file_ranges", ["job_id", "id"])
    op.create_index(
        "ix_file_ranges_leaf_cid_key",
        "file_ranges",
        [sa.text("substr(cid, 5, 8)")],
        sqlite_where=LEAF,
        postgresql_where=LEAF,
    )


def downgrade() -> None:
    op.drop_index("ix_file_ranges_leaf_cid_key", table_name="file_ranges")
    op.drop_index("ix_file_ranges_job_range", table_name="file_ranges")
    op.create_index("ix_file_ranges_job_id", "file_ranges", ["job_id"])
    with op.batch_alter_table("file_ranges") as batch_op:
        batch_op.drop_column("car_offset")
