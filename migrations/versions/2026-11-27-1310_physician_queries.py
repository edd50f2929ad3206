"""Physician queries: encounter providers, provider accounts (NPI), queries (sealed).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('provider_account',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('npi', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )
    with op.batch_alter_table('provider_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_account_npi'), ['npi'], unique=True)

    op.create_table('encounter_provider',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('encounter_id', sa.Integer(), nullable=False),
    sa.Column('npi', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.ForeignKeyConstraint(['encounter_id'], ['encounter.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('encounter_id', 'npi')
    )
    with op.batch_alter_table('encounter_provider', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_encounter_provider_encounter_id'), ['encounter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_encounter_provider_npi'), ['npi'], unique=False)

    op.create_table('physician_query',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('coder_id', sa.Integer(), nullable=False),
    sa.Column('provider_npi', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('template', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('sealed_content', sa.LargeBinary(), nullable=False),
    sa.Column('sealed_answer', sa.LargeBinary(), nullable=True),
    sa.Column('answered_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', server.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('answered_at', server.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', server.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['answered_by_id'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['coder_id'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_item.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('physician_query', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_physician_query_coder_id'), ['coder_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_physician_query_provider_npi'), ['provider_npi'], unique=False)
        batch_op.create_index(batch_op.f('ix_physician_query_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_physician_query_work_item_id'), ['work_item_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('physician_query', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_physician_query_work_item_id'))
        batch_op.drop_index(batch_op.f('ix_physician_query_status'))
        batch_op.drop_index(batch_op.f('ix_physician_query_provider_npi'))
        batch_op.drop_index(batch_op.f('ix_physician_query_coder_id'))

    op.drop_table('physician_query')
    with op.batch_alter_table('encounter_provider', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_encounter_provider_npi'))
        batch_op.drop_index(batch_op.f('ix_encounter_provider_encounter_id'))

    op.drop_table('encounter_provider')
    with op.batch_alter_table('provider_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_account_npi'))

    op.drop_table('provider_account')
