"""X12 835 remittances: per claim and per line paid/denied amounts, CARC adjustments, RARC
remarks. No patient data: the 835's member ids and names are dropped, never stored.

Revision ID: 0015
Revises: 0013
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = server.models.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "remittance",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trace_number", sa.String(50), nullable=False, unique=True),
        sa.Column("payer_name", sa.String(60), nullable=False),
        sa.Column("payer_id", sa.String(80), nullable=True),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("received_by", sa.String(100), nullable=False),
        sa.Column("received_at", UTC(), nullable=False),
    )
    op.create_table(
        "remit_claim",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("remittance_id", sa.Integer(), sa.ForeignKey("remittance.id"), nullable=False),
        sa.Column("claim_number", sa.String(38), nullable=False),
        sa.Column("work_item_id", sa.Integer(), sa.ForeignKey("work_item.id"), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("status_code", sa.String(2), nullable=False),
        sa.Column("charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("patient_cents", sa.BigInteger(), nullable=False),
        sa.Column("denied_cents", sa.BigInteger(), nullable=False),
        sa.Column("payer_claim_number", sa.String(50), nullable=True),
        sa.Column("payer_name", sa.String(60), nullable=False),
        sa.Column("queue_id", sa.Integer(), sa.ForeignKey("work_queue.id"), nullable=True),
        sa.Column("coder_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=True),
        sa.Column(
            "claim_return_id", sa.Integer(), sa.ForeignKey("claim_return.id"), nullable=True
        ),
        sa.Column("received_at", UTC(), nullable=False),
    )
    op.create_index("ix_remit_claim_remittance_id", "remit_claim", ["remittance_id"])
    op.create_index("ix_remit_claim_work_item_id", "remit_claim", ["work_item_id"])
    op.create_table(
        "remit_line",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("remit_claim_id", sa.Integer(), sa.ForeignKey("remit_claim.id"), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(48), nullable=False),
        sa.Column("charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.String(15), nullable=True),
    )
    op.create_index("ix_remit_line_remit_claim_id", "remit_line", ["remit_claim_id"])
    op.create_table(
        "remit_adjustment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("remit_claim_id", sa.Integer(), sa.ForeignKey("remit_claim.id"), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=True),
        sa.Column("group", sa.String(2), nullable=False),
        sa.Column("reason", sa.String(5), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("known", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_remit_adjustment_remit_claim_id", "remit_adjustment", ["remit_claim_id"])
    op.create_table(
        "remit_remark",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("remit_claim_id", sa.Integer(), sa.ForeignKey("remit_claim.id"), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=True),
        sa.Column("code", sa.String(10), nullable=False),
        sa.Column("known", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_remit_remark_remit_claim_id", "remit_remark", ["remit_claim_id"])


def downgrade() -> None:
    op.drop_table("remit_remark")
    op.drop_table("remit_adjustment")
    op.drop_table("remit_line")
    op.drop_table("remit_claim")
    op.drop_table("remittance")
