"""car_publications: the final name of a CAR recorded before it is published

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-05 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "car_publications",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=True),
        sa.Column("storage_id", ID, nullable=False),
        sa.Column("storage_path", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_car_publications_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["storage_id"],
            ["storages.id"],
            name=op.f("fk_car_publications_storage_id_storages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_car_publications")),
    )
    with op.batch_alter_table("car_publications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_car_publications_job_id"), ["job_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_car_publications_storage_path"), ["storage_path"], unique=False
        )


def downgrade() -> None:
    op.drop_table("car_publications")
