"""Compliance flags as cases: flag_case (current state) and flag_case_step (every change).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flag_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("work_item_id", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("updated_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("flag_case", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flag_case_flag_key"), ["flag_key"], unique=True)
    op.create_table(
        "flag_case_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["flag_case.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("flag_case_step", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flag_case_step_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flag_case_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flag_case_step_case_id"))
    op.drop_table("flag_case_step")
    with op.batch_alter_table("flag_case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flag_case_flag_key"))
    op.drop_table("flag_case")
