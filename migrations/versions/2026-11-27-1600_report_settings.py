"""Management views (issues 16 and 20): the per-class productivity standard supervisors set,
the CC/MCC counts of the final DRG kept in clear at submit (capture rate), and indexes for
the productivity and case-mix figures.

Revision ID: 0019
Revises: 0013
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "productivity_standard",
        sa.Column(
            "encounter_class", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False
        ),
        sa.Column("charts_per_hour", sa.Float(), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("updated_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("encounter_class"),
    )
    # How many secondaries of the final grouping act as CC and as MCC (not patient data: a
    # count, no code). None for outpatient and for stays submitted before this column.
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("final_cc_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("final_mcc_count", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_work_item_coded_at",
            ["coded_at"],
            unique=False,
            postgresql_where=sa.text("final_drg IS NOT NULL"),
            sqlite_where=sa.text("final_drg IS NOT NULL"),
        )
    # Productivity reads the submits of a window, then each one's lease start.
    with op.batch_alter_table("work_item_event", schema=None) as batch_op:
        batch_op.create_index("ix_work_item_event_action_at", ["action", "at"], unique=False)
        batch_op.create_index("ix_work_item_event_item_id", ["work_item_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("work_item_event", schema=None) as batch_op:
        batch_op.drop_index("ix_work_item_event_item_id")
        batch_op.drop_index("ix_work_item_event_action_at")
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.drop_index("ix_work_item_coded_at")
        batch_op.drop_column("final_mcc_count")
        batch_op.drop_column("final_cc_count")
    op.drop_table("productivity_standard")
