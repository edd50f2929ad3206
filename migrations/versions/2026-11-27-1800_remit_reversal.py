"""Payer reversals (CLP02 = 22): the earlier posting a reversal undoes; the denials queue a
payer's denial was sent to (by rule, or when no coder is on record).

Revision ID: 0022
Revises: 0015
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("claim_return") as batch:
        batch.add_column(sa.Column("queue_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_claim_return_queue", "work_queue", ["queue_id"], ["id"]
        )
    with op.batch_alter_table("remit_claim") as batch:
        batch.add_column(sa.Column("reversed_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_remit_claim_reversed_by", "remit_claim", ["reversed_by_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("remit_claim") as batch:
        batch.drop_constraint("fk_remit_claim_reversed_by", type_="foreignkey")
        batch.drop_column("reversed_by_id")
    with op.batch_alter_table("claim_return") as batch:
        batch.drop_constraint("fk_claim_return_queue", type_="foreignkey")
        batch.drop_column("queue_id")
