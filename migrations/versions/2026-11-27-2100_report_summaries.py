"""Dashboard speed at a million items (issue 20): the summaries the figures read.

- `coding_day`: submits per local day, coder, encounter class and final DRG, with the
  seconds of the leases they ended; kept on submit, built here from the stored submits.
- `work_item.discharged_at`, `encounter_class`, `payer_class`: the encounter's discharge
  moment (end of service, else start) and classes beside the status, with
  `ix_work_item_dnfb`: DNFB by queue, class or payer class is an index-only count;
  backfilled from the encounters.
- `audit_day`: the compliance activity counts of closed days (rolled up by the sealer),
  and a partial index of the events that figure counts, for the days not rolled up.
- `ix_work_item_coded_mix`: case-mix reads its columns from the index alone.

Revision ID: 0027
Revises: 0024
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0027"
down_revision: str | Sequence[str] | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVITY_WHERE = (
    "action IN ('emergency-access', 'view-record') OR outcome = 'denied'"
)


MIX_COLUMNS = (
    "coded_at",
    "final_drg",
    "final_drg_version",
    "final_cc_count",
    "final_mcc_count",
    "coded_by_id",
    "queue_id",
)


def upgrade() -> None:
    op.create_table(
        "coding_day",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("coder_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("encounter_class", sa.String(length=30), nullable=False),
        sa.Column("drg", sa.String(length=3), nullable=False, server_default=""),
        sa.Column("drg_version", sa.String(length=5), nullable=False, server_default=""),
        sa.Column("charts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_seconds", sa.Float(), nullable=False, server_default="0"),
        sa.UniqueConstraint(
            "day", "coder_id", "encounter_class", "drg", "drg_version", name="uq_coding_day"
        ),
    )
    op.create_table(
        "audit_day",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("kind", sa.String(length=20), primary_key=True),
        sa.Column("events", sa.Integer(), nullable=False, server_default="0"),
    )
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "discharged_at", server.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("encounter_class", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("payer_class", sa.String(length=100), nullable=True))
    op.execute(
        "UPDATE work_item SET (discharged_at, encounter_class, payer_class) = (SELECT "
        "coalesce(encounter.end_at, encounter.start_at), encounter.encounter_class, "
        "encounter.payer_class FROM encounter WHERE encounter.id = work_item.encounter_id)"
    )
    op.create_index(
        "ix_work_item_dnfb",
        "work_item",
        ["status", "discharged_at", "queue_id", "encounter_class", "payer_class"],
    )
    # Case-mix reads every column it needs from this index (an index-only scan).
    op.create_index(
        "ix_work_item_coded_mix",
        "work_item",
        list(MIX_COLUMNS),
        postgresql_where=sa.text("final_drg IS NOT NULL"),
        sqlite_where=sa.text("final_drg IS NOT NULL"),
    )
    op.create_index(
        "ix_audit_event_activity",
        "audit_event",
        ["time", "action", "outcome"],
        postgresql_where=sa.text(ACTIVITY_WHERE),
        sqlite_where=sa.text(ACTIVITY_WHERE),
    )
    bind = op.get_bind()
    from server.reports.summary import rebuild_coding_days

    rebuild_coding_days(bind)


def downgrade() -> None:
    op.drop_index("ix_audit_event_activity", table_name="audit_event")
    op.drop_index("ix_work_item_coded_mix", table_name="work_item")
    op.drop_index("ix_work_item_dnfb", table_name="work_item")
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.drop_column("payer_class")
        batch_op.drop_column("encounter_class")
        batch_op.drop_column("discharged_at")
    op.drop_table("audit_day")
    op.drop_table("coding_day")
