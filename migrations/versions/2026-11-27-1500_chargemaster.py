"""The chargemaster (effective-dated price lines), X12 control-number counters, and the
interchange a billed claim went out in (batch export).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "charge_item",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("charge_code", sa.String(20), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("revenue_code", sa.String(4), nullable=False),
        sa.Column("hcpcs", sa.String(5), nullable=True),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("effective", sa.Date(), nullable=False),
        sa.UniqueConstraint("charge_code", "effective"),
    )
    op.create_index("ix_charge_item_hcpcs", "charge_item", ["hcpcs", "effective"])
    op.create_index("ix_charge_item_revenue", "charge_item", ["revenue_code", "effective"])
    counters = op.create_table(
        "control_counter",
        sa.Column("name", sa.String(20), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    # ISA13 / GS06 / ST02: each export takes the next numbers (UPDATE ... RETURNING).
    op.bulk_insert(counters, [{"name": n, "value": 0} for n in ("isa", "gs", "st")])
    with op.batch_alter_table("claim_record") as batch:
        batch.add_column(sa.Column("interchange", sa.Integer(), nullable=True))
        batch.create_index("ix_claim_record_interchange", ["interchange"])
        batch.create_index("ix_claim_record_claim_number", ["claim_number"])


def downgrade() -> None:
    with op.batch_alter_table("claim_record") as batch:
        batch.drop_index("ix_claim_record_claim_number")
        batch.drop_index("ix_claim_record_interchange")
        batch.drop_column("interchange")
    op.drop_table("control_counter")
    op.drop_index("ix_charge_item_revenue", table_name="charge_item")
    op.drop_index("ix_charge_item_hcpcs", table_name="charge_item")
    op.drop_table("charge_item")
