"""The inpatient abstract of a work item (NUBC admission type, point of origin, discharge
status, admission hour, attending NPI, admitting diagnosis): one sealed JSON value per item.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = server.models.base.UTCDateTime


def upgrade() -> None:
    # Patient data: sealed under the encounter's data key, never in clear.
    op.create_table(
        "item_abstract",
        sa.Column("work_item_id", sa.Integer(), sa.ForeignKey("work_item.id"), primary_key=True),
        sa.Column("sealed_abstract", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("item_abstract")
