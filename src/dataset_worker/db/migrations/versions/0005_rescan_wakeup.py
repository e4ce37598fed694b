"""sources that change, work that starts when queued: preparations.auto_rescan, job wake-ups

- `preparations.auto_rescan`: a pack that fails on a changed or vanished source file queues the
  re-planning scan by itself (prep create --auto-rescan).
- PostgreSQL only: a trigger that sends `NOTIFY dataset_worker_jobs` whenever a job row becomes
  `ready` (inserted, or updated into it), so idle workers that LISTEN wake at once instead of at
  their next poll. Notifications are delivered on commit, and PostgreSQL folds identical ones of
  one transaction into one, so a scan that queues thousands of pack jobs sends one.

Revision ID: 0005
Revises: 0002 (the lead re-chains it after 0003 and 0004)
Create Date: 2026-12-05 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

CHANNEL = "dataset_worker_jobs"  # worker/runtime/wakeup.py listens on it

_FUNCTION = f"""
CREATE OR REPLACE FUNCTION dataset_worker_notify_ready() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
_TRIGGERS = (
    "CREATE TRIGGER jobs_ready_insert AFTER INSERT ON jobs FOR EACH ROW "
    "WHEN (NEW.state = 'ready') EXECUTE FUNCTION dataset_worker_notify_ready()",
    "CREATE TRIGGER jobs_ready_update AFTER UPDATE OF state ON jobs FOR EACH ROW "
    "WHEN (NEW.state = 'ready' AND OLD.state IS DISTINCT FROM 'ready') "
    "EXECUTE FUNCTION dataset_worker_notify_ready()",
)


def upgrade() -> None:
    with op.batch_alter_table("preparations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("auto_rescan", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)
        for statement in _TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS jobs_ready_update ON jobs")
        op.execute("DROP TRIGGER IF EXISTS jobs_ready_insert ON jobs")
        op.execute("DROP FUNCTION IF EXISTS dataset_worker_notify_ready()")
    with op.batch_alter_table("preparations", schema=None) as batch_op:
        batch_op.drop_column("auto_rescan")
