"""SSO and hardening: OIDC links, rate limits, break-glass.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_counter",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start"),
    )
    op.create_table(
        "oidc_transaction",
        sa.Column("state_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("binding_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("code_verifier", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("redirect_uri", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("next_path", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("created_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_hash"),
    )
    with op.batch_alter_table("oidc_transaction", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oidc_transaction_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("oidc_transaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oidc_transaction_created_at"))
    op.drop_table("oidc_transaction")
    op.drop_table("rate_limit_counter")
