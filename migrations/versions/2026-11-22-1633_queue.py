"""Queue: claims, leases, holds, assignment.

Adds work_item_event.owner_id: the coder holding the item after each event.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("work_item_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_work_item_event_owner_id"), ["owner_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_work_item_event_owner_id_app_user", "app_user", ["owner_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("work_item_event", schema=None) as batch_op:
        batch_op.drop_constraint("fk_work_item_event_owner_id_app_user", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_work_item_event_owner_id"))
        batch_op.drop_column("owner_id")
