"""Coding and billing: code lines (sealed), loaded code sets, QA reviews, claims and returns.

Free text people type (QA and return reasons) is sealed under the encounter's data key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = server.models.base.UTCDateTime


def upgrade() -> None:
    # Code lines are clinical patient data: one sealed JSON value per work item.
    op.create_table(
        "item_codes",
        sa.Column("work_item_id", sa.Integer(), sa.ForeignKey("work_item.id"), primary_key=True),
        sa.Column("sealed_lines", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
    )
    op.create_table(
        "code_set_entry",
        sa.Column("system", sa.String(10), primary_key=True),
        sa.Column("code", sa.String(10), primary_key=True),
        sa.Column("description", sa.String(300), nullable=False),
    )
    op.create_table(
        "qa_review",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("work_item_id", sa.Integer(), sa.ForeignKey("work_item.id"), nullable=False),
        sa.Column("coder_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("sealed_reason", sa.LargeBinary(), nullable=True),
        sa.Column("at", UTC(), nullable=False),
    )
    op.create_index("ix_qa_review_work_item_id", "qa_review", ["work_item_id"])
    op.create_index("ix_qa_review_coder_id", "qa_review", ["coder_id"])
    op.create_table(
        "claim_record",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("work_item_id", sa.Integer(), sa.ForeignKey("work_item.id"), nullable=False),
        sa.Column("claim_number", sa.String(50), nullable=False),
        sa.Column("billed_by", sa.String(100), nullable=False),
        sa.Column("billed_at", UTC(), nullable=False),
    )
    op.create_index("ix_claim_record_work_item_id", "claim_record", ["work_item_id"])
    op.create_table(
        "claim_return",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("work_item_id", sa.Integer(), sa.ForeignKey("work_item.id"), nullable=False),
        sa.Column("coder_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=True),
        sa.Column("sealed_reason", sa.LargeBinary(), nullable=False),
        sa.Column("returned_by", sa.String(100), nullable=False),
        sa.Column("at", UTC(), nullable=False),
    )
    op.create_index("ix_claim_return_work_item_id", "claim_return", ["work_item_id"])


def downgrade() -> None:
    for table in ("claim_return", "claim_record", "qa_review", "code_set_entry", "item_codes"):
        op.drop_table(table)
