"""Claim edits: NCCI PTP pairs and MUE limits (effective-dated), loaded files, edit levels.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = server.models.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "ncci_ptp_edit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("setting", sa.String(20), nullable=False),
        sa.Column("column1", sa.String(5), nullable=False),
        sa.Column("column2", sa.String(5), nullable=False),
        sa.Column("effective", sa.Date(), nullable=False),
        sa.Column("deleted", sa.Date(), nullable=True),
        sa.Column("modifier", sa.String(1), nullable=False),
        sa.Column("rationale", sa.String(200), nullable=False),
        sa.Column("prior_1996", sa.Boolean(), nullable=False),
        sa.Column("quarter", sa.String(40), nullable=False),
        sa.UniqueConstraint("setting", "column1", "column2", "effective"),
    )
    op.create_index("ix_ncci_ptp_edit_lookup", "ncci_ptp_edit", ["setting", "column1", "column2"])
    op.create_table(
        "mue_edit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("setting", sa.String(20), nullable=False),
        sa.Column("code", sa.String(5), nullable=False),
        sa.Column("effective", sa.Date(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("adjudication", sa.Integer(), nullable=False),
        sa.Column("rationale", sa.String(200), nullable=False),
        sa.Column("quarter", sa.String(40), nullable=False),
        sa.UniqueConstraint("setting", "code", "effective"),
    )
    op.create_index("ix_mue_edit_lookup", "mue_edit", ["setting", "code"])
    op.create_index("ix_mue_edit_table", "mue_edit", ["setting", "effective"])
    op.create_table(
        "edit_file_load",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("setting", sa.String(20), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("quarter", sa.String(40), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("loaded_at", UTC(), nullable=False),
        sa.UniqueConstraint("kind", "setting", "sha256"),
    )
    op.create_table(
        "edit_level",
        sa.Column("payer_class", sa.String(100), primary_key=True),
        sa.Column("edit", sa.String(60), primary_key=True),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("edit_level")
    op.drop_table("edit_file_load")
    op.drop_index("ix_mue_edit_table", table_name="mue_edit")
    op.drop_index("ix_mue_edit_lookup", table_name="mue_edit")
    op.drop_table("mue_edit")
    op.drop_index("ix_ncci_ptp_edit_lookup", table_name="ncci_ptp_edit")
    op.drop_table("ncci_ptp_edit")
