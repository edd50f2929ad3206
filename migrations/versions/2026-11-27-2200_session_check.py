"""One session check in SQL, shared by Next and the audit search (issue 23).

`chartdesk_session_check(...)` holds what `auth_service.session_principal` and the access
rule check, for the routes that fold the check into their own statement: the session exists
and is within its idle and absolute limits, its user is active and holds one of the roles,
and (for an unsafe method) the presented CSRF token matches, compared as SHA-256 digests. It
then restarts the idle clock as `session_principal` does (the person's requests only, at
most every 10 s). A refusal answers no row and writes nothing; the server then runs the
ordinary rule, which answers and audits the refusal as every route does.

`chartdesk_claim_session` (migration 0025) now calls it instead of carrying its own copy.

`chartdesk_audit_search_session(...)` is `GET /api/v1/audit/events` for a compliance
officer's session in one round trip: the check, the patient lookup by blind index, the
`audit-search` event (committed with the read: the call is its own transaction) and the page
of events, newest first. The filters present are added to the events query (EXECUTE, planned
with the values, so each uses its index). Refused: one row with `refused` true. SQLite has
no functions and keeps the plain path.

Revision ID: 0030
Revises: 0027
Create Date: 2026-11-27
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0030"
down_revision: str | Sequence[str] | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SESSION_CHECK = """
CREATE OR REPLACE FUNCTION chartdesk_session_check(
    p_sid text, p_csrf text, p_activity boolean, p_idle_minutes integer,
    p_max_hours integer, p_roles text[], p_now timestamptz
) RETURNS TABLE (user_id integer, username text, roles text, seen timestamptz, touched boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
-- p_csrf: the token an unsafe request presented; NULL only for a safe method (GET), which
-- needs none. Callers of unsafe methods refuse a missing token before calling.
DECLARE
    v_user integer;
    v_csrf text;
    v_seen timestamptz;
    v_created timestamptz;
    v_name text;
    v_active boolean;
    v_roles text;
    v_touched boolean;
BEGIN
    SELECT s.user_id, s.csrf_token, s.last_seen_at, s.created_at, u.username, u.is_active,
        (SELECT string_agg(r.role, ' ' ORDER BY r.role COLLATE "C")
         FROM user_role r WHERE r.user_id = s.user_id)
    INTO v_user, v_csrf, v_seen, v_created, v_name, v_active, v_roles
    FROM user_session s LEFT JOIN app_user u ON u.id = s.user_id
    WHERE s.id = p_sid;
    -- All must hold; a NULL anywhere (no such session, user gone) refuses.
    IF NOT coalesce(FOUND AND v_name IS NOT NULL AND v_active
        AND p_now <= v_seen + make_interval(mins => p_idle_minutes)
        AND p_now <= v_created + make_interval(hours => p_max_hours)
        AND (p_csrf IS NULL
             OR sha256(convert_to(p_csrf, 'UTF8')) = sha256(convert_to(v_csrf, 'UTF8')))
        AND string_to_array(v_roles, ' ') && p_roles, false)
    THEN
        RETURN;
    END IF;
    -- The person's activity restarts the idle clock, first: the ordinary path also touches
    -- the session row before it locks anything else, and one order means no deadlock.
    v_touched := p_activity AND p_now - v_seen > interval '10 seconds';
    IF v_touched THEN
        UPDATE user_session SET last_seen_at = p_now WHERE user_session.id = p_sid;
    END IF;
    user_id := v_user;
    username := v_name;
    roles := coalesce(v_roles, '');
    seen := v_seen;
    touched := v_touched;
    RETURN NEXT;
END
$fn$
"""

CLAIM_SESSION = """
CREATE OR REPLACE FUNCTION chartdesk_claim_session(
    p_sid text, p_csrf text, p_activity boolean, p_idle_minutes integer,
    p_max_hours integer, p_role text, p_queue text, p_now timestamptz, p_exp timestamptz,
    p_max integer, p_ip text, p_ua text, p_request_id text, p_batch integer
) RETURNS TABLE (
    outcome text, queue_name text, owner text, id integer, status text, priority integer,
    due_at timestamptz, lease_expires_at timestamptz, hold_reason text,
    created_at timestamptz, updated_at timestamptz
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_me record;
    v_ok boolean := false;
BEGIN
    -- Next is a POST: a token is required (NULL would mean a safe method to the check).
    IF p_csrf IS NOT NULL THEN
        SELECT * INTO v_me FROM chartdesk_session_check(
            p_sid, p_csrf, p_activity, p_idle_minutes, p_max_hours, ARRAY[p_role], p_now);
        v_ok := FOUND;
    END IF;
    IF NOT v_ok THEN
        RETURN QUERY SELECT 'refused'::text, NULL::text, NULL::text, NULL::integer,
            NULL::text, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text,
            NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT c.outcome, c.queue_name, (c.item).id, (c.item).status::text, (c.item).priority,
        (c.item).due_at, (c.item).lease_expires_at, (c.item).hold_reason::text,
        (c.item).created_at, (c.item).updated_at
    INTO outcome, queue_name, id, status, priority, due_at, lease_expires_at, hold_reason,
        created_at, updated_at
    FROM chartdesk_claim(v_me.user_id, p_queue, p_now, p_exp, p_max, v_me.username,
        v_me.roles, p_ip, p_ua, p_request_id, p_batch) AS c;
    -- A refused queue answers an error, and the ordinary path rolls its touch back with the
    -- request: put the old time back (the row stays locked by us until the call ends).
    IF v_me.touched AND outcome IN ('no_queue', 'not_member') THEN
        UPDATE user_session SET last_seen_at = v_me.seen WHERE user_session.id = p_sid;
    END IF;
    IF outcome IS NOT NULL THEN
        owner := v_me.username;
        RETURN NEXT;
    END IF;
END
$fn$
"""

AUDIT_SEARCH = """
CREATE OR REPLACE FUNCTION chartdesk_audit_search_session(
    p_sid text, p_activity boolean, p_idle_minutes integer, p_max_hours integer,
    p_roles text[], p_now timestamptz, p_ip text, p_ua text, p_request_id text,
    p_purpose text, p_detail text, p_mrn_index text, p_actor text, p_work_item integer,
    p_action text, p_outcome text, p_since timestamptz, p_until timestamptz,
    p_before timestamptz, p_before_id bigint, p_limit integer
) RETURNS TABLE (
    refused boolean, id bigint, "time" timestamptz, action text, outcome text, actor text,
    actor_roles text, work_item_id integer, patient_id integer, source_ip text,
    request_id text, purpose text
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_me record;
    v_ids integer[];
    v_sql text;
BEGIN
    SELECT * INTO v_me FROM chartdesk_session_check(
        p_sid, NULL, p_activity, p_idle_minutes, p_max_hours, p_roles, p_now);
    IF NOT FOUND THEN
        RETURN QUERY SELECT true, NULL::bigint, NULL::timestamptz, NULL::text, NULL::text,
            NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::text, NULL::text,
            NULL::text;
        RETURN;
    END IF;
    IF p_mrn_index IS NOT NULL THEN
        v_ids := ARRAY(SELECT p.id FROM patient p WHERE p.mrn_index = p_mrn_index);
    END IF;
    -- The search is audited first, as server.audit.search.audited_events does.
    INSERT INTO audit_event (time, action, outcome, actor, actor_kind, actor_roles,
        patient_id, mrn_index, source_ip, user_agent, request_id, purpose, detail)
    VALUES (p_now, 'audit-search', 'success', v_me.username, 'user', v_me.roles,
        CASE WHEN cardinality(v_ids) = 1 THEN v_ids[1] END, p_mrn_index, p_ip, p_ua,
        p_request_id, p_purpose, p_detail);
    IF cardinality(v_ids) = 0 THEN
        RETURN;  -- the MRN names nobody: nothing can match
    END IF;
    v_sql := 'SELECT false, e.id, e.time, e.action::text, e.outcome::text, e.actor::text, '
        'e.actor_roles::text, e.work_item_id, e.patient_id, e.source_ip::text, '
        'e.request_id::text, e.purpose::text FROM audit_event e WHERE true';
    IF v_ids IS NOT NULL THEN v_sql := v_sql || ' AND e.patient_id = ANY ($1)'; END IF;
    IF p_actor IS NOT NULL THEN v_sql := v_sql || ' AND e.actor = $2'; END IF;
    IF p_work_item IS NOT NULL THEN v_sql := v_sql || ' AND e.work_item_id = $3'; END IF;
    IF p_action IS NOT NULL THEN v_sql := v_sql || ' AND e.action = $4'; END IF;
    IF p_outcome IS NOT NULL THEN v_sql := v_sql || ' AND e.outcome = $5'; END IF;
    IF p_since IS NOT NULL THEN v_sql := v_sql || ' AND e.time >= $6'; END IF;
    IF p_until IS NOT NULL THEN v_sql := v_sql || ' AND e.time < $7'; END IF;
    IF p_before IS NOT NULL THEN
        v_sql := v_sql || ' AND (e.time < $8 OR (e.time = $8 AND e.id < $9))';
    END IF;
    v_sql := v_sql || ' ORDER BY e.time DESC, e.id DESC LIMIT $10';
    RETURN QUERY EXECUTE v_sql USING v_ids, p_actor, p_work_item, p_action, p_outcome,
        p_since, p_until, p_before, p_before_id, p_limit;
END
$fn$
"""


def _claim_session_0025() -> str:
    """Migration 0025's own text of chartdesk_claim_session (what a downgrade puts back)."""
    path = Path(__file__).with_name("2026-11-27-2100_claim_session.py")
    spec = importlib.util.spec_from_file_location("claim_session_0025", path)
    assert spec is not None and spec.loader is not None  # noqa: S101
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.FUNCTION)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SESSION_CHECK)
        op.execute(CLAIM_SESSION)
        op.execute(AUDIT_SEARCH)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_claim_session_0025())
        op.execute(
            "DROP FUNCTION IF EXISTS chartdesk_audit_search_session(text, boolean, integer, "
            "integer, text[], timestamptz, text, text, text, text, text, text, text, integer, "
            "text, text, timestamptz, timestamptz, timestamptz, bigint, integer)"
        )
        op.execute(
            "DROP FUNCTION IF EXISTS chartdesk_session_check(text, text, boolean, integer, "
            "integer, text[], timestamptz)"
        )
