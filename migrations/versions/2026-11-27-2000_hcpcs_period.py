"""HCPCS Level II dates by quarter (`hcpcs_period`): each CMS quarterly file's code added,
action effective and termination dates, kept side by side (issue 15).

Revision ID: 0024
Revises: 0021
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0024"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hcpcs_period",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(length=5), nullable=False),
        sa.Column("added", sa.Date(), nullable=True),
        sa.Column("action_effective", sa.Date(), nullable=True),
        sa.Column("terminated", sa.Date(), nullable=True),
        sa.Column("action_code", sa.String(length=1), nullable=False, server_default=""),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("loaded_at", server.models.base.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_hcpcs_period_code", "hcpcs_period", ["code"])


def downgrade() -> None:
    op.drop_index("ix_hcpcs_period_code", table_name="hcpcs_period")
    op.drop_table("hcpcs_period")
