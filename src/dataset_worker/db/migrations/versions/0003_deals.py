"""deals: storage deals with providers over Curio's Market 2.0, and deal schedules

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "deal_schedules",
        sa.Column("id", ID, nullable=False),
        sa.Column("preparation_id", ID, nullable=False),
        sa.Column("client", sa.String(length=127), nullable=False),
        sa.Column("providers", sa.JSON(), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("per_day", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("product", sa.String(length=15), nullable=False),
        sa.Column("duration", sa.BigInteger(), nullable=False),
        sa.Column("start_epoch_offset", sa.BigInteger(), nullable=True),
        sa.Column("url_template", sa.Text(), nullable=False),
        sa.Column("indexing", sa.Boolean(), nullable=False),
        sa.Column("announce_payload", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=15), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["preparation_id"],
            ["preparations.id"],
            name=op.f("fk_deal_schedules_preparation_id_preparations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_schedules")),
    )
    with op.batch_alter_table("deal_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deal_schedules_preparation_id"), ["preparation_id"], unique=False
        )
    op.create_table(
        "deals",
        sa.Column("id", ID, nullable=False),
        sa.Column("ulid", sa.String(length=26), nullable=False),
        sa.Column("preparation_id", ID, nullable=True),
        sa.Column("car_id", ID, nullable=True),
        sa.Column("schedule_id", ID, nullable=True),
        sa.Column("piece_cid", sa.String(length=127), nullable=False),
        sa.Column("piece_cid_v2", sa.String(length=127), nullable=False),
        sa.Column("piece_size", sa.BigInteger(), nullable=False),
        sa.Column("payload_size", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=63), nullable=False),
        sa.Column("sp_url", sa.Text(), nullable=False),
        sa.Column("client", sa.String(length=127), nullable=False),
        sa.Column("product", sa.String(length=15), nullable=False),
        sa.Column("state", sa.String(length=15), nullable=False),
        sa.Column("proposal", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_reason", sa.Text(), nullable=True),
        sa.Column("sp_state", sa.String(length=15), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["car_id"], ["cars.id"], name=op.f("fk_deals_car_id_cars"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["preparation_id"],
            ["preparations.id"],
            name=op.f("fk_deals_preparation_id_preparations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["deal_schedules.id"],
            name=op.f("fk_deals_schedule_id_deal_schedules"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
        sa.UniqueConstraint("piece_cid", "provider", name=op.f("uq_deals_piece_cid_provider")),
        sa.UniqueConstraint("ulid", name=op.f("uq_deals_ulid")),
    )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deals_state_next_attempt_at", ["state", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deals_preparation_id"), ["preparation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_deals_provider"), ["provider"], unique=False)
        batch_op.create_index(batch_op.f("ix_deals_schedule_id"), ["schedule_id"], unique=False)


def downgrade() -> None:
    op.drop_table("deals")
    op.drop_table("deal_schedules")
