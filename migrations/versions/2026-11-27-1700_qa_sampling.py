"""QA sampling rules per queue: the new-coder rule and the adaptive formula's settings
(`qa_sampling`, one row per queue) and the ordered targeted rules (`qa_sample_rule`).

Revision ID: 0017
Revises: 0013
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = server.models.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "qa_sampling",
        sa.Column(
            "queue_id",
            sa.Integer(),
            sa.ForeignKey("work_queue.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("new_coder_charts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("target_accuracy", sa.Integer(), nullable=False, server_default="95"),
        sa.Column("adaptive", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("base_percent", sa.Float(), nullable=False, server_default="10"),
        sa.Column("k_accuracy", sa.Float(), nullable=False, server_default="2"),
        sa.Column("k_denial", sa.Float(), nullable=False, server_default="1"),
        sa.Column("floor_percent", sa.Integer(), nullable=False, server_default="5"),
        sa.Column("ceiling_percent", sa.Integer(), nullable=False, server_default="50"),
        sa.Column("review_window", sa.Integer(), nullable=False, server_default="20"),
        sa.Column("updated_at", UTC(), nullable=False),
    )
    op.create_table(
        "qa_sample_rule",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "queue_id",
            sa.Integer(),
            sa.ForeignKey("work_queue.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False, server_default="100"),
        sa.Column("created_at", UTC(), nullable=False),
    )
    op.create_index("ix_qa_sample_rule_queue_id", "qa_sample_rule", ["queue_id"])


def downgrade() -> None:
    op.drop_index("ix_qa_sample_rule_queue_id", table_name="qa_sample_rule")
    op.drop_table("qa_sample_rule")
    op.drop_table("qa_sampling")
