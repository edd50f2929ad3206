"""Telehealth kept (`encounter.modality`): FHIR class VR, or the encounter JSON's `modality`,
so that a professional claim carries place of service 02 (10 with the patient at home).

Revision ID: 0028
Revises: 0024
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | Sequence[str] | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("encounter") as batch:
        batch.add_column(sa.Column("modality", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("encounter") as batch:
        batch.drop_column("modality")
