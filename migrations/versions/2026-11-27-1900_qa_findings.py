"""QA worksheet: a finding per code-level difference (category in clear, codes and comments
sealed), the coder's response and the supervisor's decision; DRG weights, payment
difference and codes reviewed on each review.

Revision ID: 0016
Revises: 0023
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = server.models.base.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("qa_review") as batch:
        batch.add_column(sa.Column("coder_weight", sa.Float(), nullable=True))
        batch.add_column(sa.Column("qa_weight", sa.Float(), nullable=True))
        batch.add_column(sa.Column("payment_difference", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("codes_reviewed", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "qa_finding",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("qa_review.id"), nullable=False),
        sa.Column("work_item_id", sa.Integer(), sa.ForeignKey("work_item.id"), nullable=False),
        sa.Column("coder_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("target", sa.String(10), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("abstract_field", sa.String(40), nullable=True),
        sa.Column("principal", sa.Boolean(), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("taxonomy_version", sa.String(20), nullable=False),
        # Patient data (codes before and after, comments, reasons): sealed, never in clear.
        sa.Column("sealed_detail", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("responded_at", UTC(), nullable=True),
        sa.Column("sealed_response", sa.LargeBinary(), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=True),
        sa.Column("decided_at", UTC(), nullable=True),
        sa.Column("sealed_decision", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_qa_finding_review_id", "qa_finding", ["review_id"])
    op.create_index("ix_qa_finding_work_item_id", "qa_finding", ["work_item_id"])
    op.create_index("ix_qa_finding_coder_id", "qa_finding", ["coder_id"])
    op.create_index("ix_qa_finding_status", "qa_finding", ["status"])


def downgrade() -> None:
    op.drop_table("qa_finding")
    with op.batch_alter_table("qa_review") as batch:
        batch.drop_column("codes_reviewed")
        batch.drop_column("payment_difference")
        batch.drop_column("qa_weight")
        batch.drop_column("coder_weight")
