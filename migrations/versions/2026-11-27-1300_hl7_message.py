"""HL7 v2 over MLLP: the messages already applied (idempotency by sender and MSH-10).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hl7_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "sending_application", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False
        ),
        sa.Column("sending_facility", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("control_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("message_type", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("work_item_id", sa.Integer(), nullable=True),
        sa.Column("received_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["work_item_id"], ["work_item.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sending_application", "sending_facility", "control_id"),
    )
    op.create_index(
        op.f("ix_hl7_message_work_item_id"), "hl7_message", ["work_item_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_hl7_message_work_item_id"), table_name="hl7_message")
    op.drop_table("hl7_message")
