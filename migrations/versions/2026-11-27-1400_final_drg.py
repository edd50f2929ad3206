"""The MS-DRG of an inpatient stay on its work item: the baseline (first saved draft that
groups) and the final (at submit), each with its grouper version; on a QA review, the DRG
as the coder submitted it and after QA (a DRG shift when they differ).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("baseline_drg", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "baseline_drg_version", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("final_drg", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "final_drg_version", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True
            )
        )
    with op.batch_alter_table("qa_review", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("coder_drg", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True)
        )
        batch_op.add_column(
            sa.Column("qa_drg", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("qa_review", schema=None) as batch_op:
        batch_op.drop_column("qa_drg")
        batch_op.drop_column("coder_drg")
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.drop_column("final_drg_version")
        batch_op.drop_column("final_drg")
        batch_op.drop_column("baseline_drg_version")
        batch_op.drop_column("baseline_drg")
