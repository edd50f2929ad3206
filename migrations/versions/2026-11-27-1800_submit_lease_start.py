"""Dashboard speed (issue 20): each submit event keeps the start of the lease it ends, so
the productivity figure reads a window's submits alone instead of looking each lease start
up at report time (one index look-up per submit, most of its time at a million items).

Backfilled here from the events already stored: a submit's lease start is the last event of
the same item into progress by `claim`, `assign`, `reassign` or `resume` before it (None if
none, as the report counted it before).

Revision ID: 0023
Revises: 0019
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0023"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
UPDATE work_item_event SET lease_started_at = (
    SELECT lease_start.at FROM work_item_event AS lease_start
    WHERE lease_start.work_item_id = work_item_event.work_item_id
      AND lease_start.id < work_item_event.id
      AND lease_start.action IN ('claim', 'assign', 'reassign', 'resume')
      AND lease_start.to_status = 'in_progress'
    ORDER BY lease_start.id DESC LIMIT 1
)
WHERE action = 'submit'
"""


def upgrade() -> None:
    with op.batch_alter_table("work_item_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "lease_started_at", server.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("work_item_event", schema=None) as batch_op:
        batch_op.drop_column("lease_started_at")
