"""Audit: the database stamps each event's time and transaction id (PostgreSQL).

A BEFORE INSERT trigger overwrites `audit_event.time` with the transaction clock
(`transaction_timestamp()`, what `now()` returns) and `txid` with the writing transaction's
id, whatever the INSERT said. The application role (README's two-role setup) owns neither
the table nor the function, so it cannot drop, replace or disable the trigger, and cannot
set `session_replication_role`: it can no longer back-date an event (an INSERT of
`now() - '3 days'` is stored at now) nor slip one behind the sealer's watermark with an old
txid. The owner and superusers still can; `audit verify` catches a back-dated event that
was sealed after a checkpoint signed later than its time.

SQLite has no roles: whoever can write the file can drop any trigger, so none is added there;
the event time is the app's clock and verify's checkpoint check is the safeguard (README).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION audit_event_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.time := transaction_timestamp();
            NEW.txid := pg_current_xact_id();
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_event_stamp BEFORE INSERT ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_stamp()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS audit_event_stamp ON audit_event")
    op.execute("DROP FUNCTION IF EXISTS audit_event_stamp()")
