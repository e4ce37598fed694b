"""source_attachments.listed: the attachment's source has been listed to the end once

A first scan that is interrupted resumes its listing where its rows end (worker/jobs/scan/
resume.py); a later scan (prep rescan) lists everything. The flag tells them apart, since the
scan job row itself is restarted. Attachments that already have files count as listed: they
never resume.

Revision ID: 0007
Revises: 0006 (the lead re-chains it)
Create Date: 2026-12-05 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_attachments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("listed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.execute(
        "UPDATE source_attachments SET listed = TRUE WHERE EXISTS "
        "(SELECT 1 FROM files WHERE files.attachment_id = source_attachments.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("source_attachments", schema=None) as batch_op:
        batch_op.drop_column("listed")
