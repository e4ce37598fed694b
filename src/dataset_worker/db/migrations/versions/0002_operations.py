"""operations: retries, chaining, per-file sha256, manifests, who ran a job

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 06:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("preparations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("auto_chain", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("file_hash", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(sa.Column("uuid", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("manifest_meta", sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_worker_id", sa.String(length=63), nullable=True))
        batch_op.add_column(sa.Column("last_worker_host", sa.String(length=255), nullable=True))
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sha256", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("sha256")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("last_worker_host")
        batch_op.drop_column("last_worker_id")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")
    with op.batch_alter_table("preparations", schema=None) as batch_op:
        batch_op.drop_column("manifest_meta")
        batch_op.drop_column("uuid")
        batch_op.drop_column("file_hash")
        batch_op.drop_column("auto_chain")
