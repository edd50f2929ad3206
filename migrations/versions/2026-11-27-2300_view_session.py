"""The coder's record view in one round trip (issue 23).

`chartdesk_view_session(...)` is `GET /api/v1/work/{id}` for a coder's cookie session: the
session check (`chartdesk_session_check`, migration 0030), the item's row lock, the lease
check, the `view-record` audit event and the sealed chart, all in one call that is its own
transaction, so the audit event commits with the read, before anything is opened.

It answers one row whose `outcome` says what happened:

- `refused`: the session check said no; nothing was written.
- `ordinary`: the session is good, but the chart is not one this call opens: the item is not
  leased to the caller (gone, someone else's, expired), its record's key was destroyed, or
  it has physician queries or a billing return (opening those reads more). Nothing was
  written: the idle-clock touch is put back, as Next does for a refused queue. The server
  then takes the ordinary path, which answers (and audits) as it always has.
- `opened`: the event is written; the row carries the item and encounter rows (composites,
  expanded by the caller), the queue name, the holder, the data key, the documents, the
  sealed codes and abstract, and the encounter's practitioners.

SQLite has no functions and keeps the plain path.

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031"
down_revision: str | Sequence[str] | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEW_SESSION = """
CREATE OR REPLACE FUNCTION chartdesk_view_session(
    p_sid text, p_activity boolean, p_idle_minutes integer, p_max_hours integer,
    p_roles text[], p_now timestamptz, p_item integer, p_ip text, p_ua text,
    p_request_id text, p_purpose text, p_detail text
) RETURNS TABLE (
    outcome text, item_row work_item, encounter_row encounter, queue_name text,
    holder text, holder_roles text, key_kek_id text, key_wrapped bytea, doc_ids integer[],
    doc_positions integer[], doc_dates timestamptz[], doc_sealed bytea[], codes_sealed bytea,
    abstract_sealed bytea,
    provider_npis text[], provider_names text[]
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_me record;
    v_item work_item;
    v_enc encounter;
    v_locked_at timestamptz;
BEGIN
    SELECT * INTO v_me FROM chartdesk_session_check(
        p_sid, NULL, p_activity, p_idle_minutes, p_max_hours, p_roles, p_now);
    IF NOT FOUND THEN
        outcome := 'refused';
        RETURN NEXT;
        RETURN;
    END IF;
    -- Locked as the ordinary path's leased_item locks it (after the session's touch: one
    -- order, no deadlock), so a submit or release cannot slip between check and read.
    SELECT * INTO v_item FROM work_item w WHERE w.id = p_item FOR UPDATE;
    -- The lease is checked as of the moment the lock was granted, as leased_item reads its
    -- clock after the lock: the server's time plus however long the lock was waited for
    -- (measured on this clock alone, so no skew between the two hosts' clocks enters).
    v_locked_at := p_now + (clock_timestamp() - statement_timestamp());
    SELECT * INTO v_enc FROM encounter e WHERE e.id = v_item.encounter_id;
    IF v_item.id IS NULL
        OR v_item.lease_owner_id IS DISTINCT FROM v_me.user_id
        OR v_item.status IS DISTINCT FROM 'in_progress'
        OR NOT coalesce(v_item.lease_expires_at > v_locked_at, false)
        OR NOT EXISTS (SELECT 1 FROM data_key k
                       WHERE k.id = v_enc.data_key_id AND k.wrapped IS NOT NULL)
        OR EXISTS (SELECT 1 FROM physician_query q WHERE q.work_item_id = p_item)
        OR EXISTS (SELECT 1 FROM claim_return r WHERE r.work_item_id = p_item)
    THEN
        IF v_me.touched THEN
            UPDATE user_session SET last_seen_at = v_me.seen WHERE user_session.id = p_sid;
        END IF;
        outcome := 'ordinary';
        RETURN NEXT;
        RETURN;
    END IF;
    -- The view is audited first, as server.records.service.open_record does.
    INSERT INTO audit_event (time, action, outcome, actor, actor_kind, actor_roles,
        patient_id, mrn_index, work_item_id, source_ip, user_agent, request_id, purpose,
        detail)
    SELECT p_now, 'view-record', 'success', v_me.username, 'user', v_me.roles, p.id,
        p.mrn_index, p_item, p_ip, p_ua, p_request_id, p_purpose, p_detail
    FROM patient p WHERE p.id = v_enc.patient_id;
    RETURN QUERY
    SELECT 'opened'::text, v_item, v_enc, q.name::text, v_me.username::text,
        v_me.roles::text, k.kek_id::text, k.wrapped, d.ids, d.positions, d.dates, d.sealed,
        c.sealed_lines, a.sealed_abstract, pr.npis, pr.names
    FROM data_key k
    JOIN work_queue q ON q.id = v_item.queue_id
    LEFT JOIN item_codes c ON c.work_item_id = p_item
    LEFT JOIN item_abstract a ON a.work_item_id = p_item
    CROSS JOIN LATERAL (
        SELECT array_agg(x.id ORDER BY x.position, x.id) AS ids,
            array_agg(x.position ORDER BY x.position, x.id) AS positions,
            array_agg(x.doc_date ORDER BY x.position, x.id) AS dates,
            array_agg(x.sealed ORDER BY x.position, x.id) AS sealed
        FROM document x WHERE x.encounter_id = v_enc.id) d
    CROSS JOIN LATERAL (
        SELECT array_agg(ep.npi::text ORDER BY ep.id) AS npis,
            array_agg(ep.name::text ORDER BY ep.id) AS names
        FROM encounter_provider ep WHERE ep.encounter_id = v_enc.id) pr
    WHERE k.id = v_enc.data_key_id;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(VIEW_SESSION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS chartdesk_view_session(text, boolean, integer, integer, "
            "text[], timestamptz, integer, text, text, text, text, text)"
        )
