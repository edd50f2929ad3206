"""Next in one round trip: the caller's session checked inside the claim (issue 23).

`chartdesk_claim_session(...)` takes the session id (SHA-256 of the cookie) and the CSRF token
the request presented, and checks what `auth_service.session_principal` and
`RequireRole(coder)` check: the session exists, is within its idle and absolute limits, its
user is active and holds the role, and the token matches (compared as SHA-256 digests, so the
comparison's time says nothing about the token). It then touches the session's last activity
as `session_principal` does (person's requests only, at most every 10 s) and calls
`chartdesk_claim` (migration 0021) as that user.

Any refusal answers one row, outcome 'refused', having written nothing: the server then runs
the ordinary path (session_principal, the access rule), which raises the same 401/403 and
writes the same audited refusal (or sign-out on timeout) as every other route. Nothing
waiting: no row. SQLite has no such function and keeps the plain path.

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | Sequence[str] | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
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
        AND p_csrf IS NOT NULL
        AND sha256(convert_to(p_csrf, 'UTF8')) = sha256(convert_to(v_csrf, 'UTF8'))
        AND p_role = ANY (string_to_array(v_roles, ' ')), false)
    THEN
        RETURN QUERY SELECT 'refused'::text, NULL::text, NULL::text, NULL::integer,
            NULL::text, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text,
            NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    -- The person's activity restarts the idle clock (as session_principal does), before the
    -- claim: the ordinary path also touches the session row before it locks the coder's
    -- user row, and the same order on both paths means no deadlock between them.
    v_touched := p_activity AND p_now - v_seen > interval '10 seconds';
    IF v_touched THEN
        UPDATE user_session SET last_seen_at = p_now WHERE user_session.id = p_sid;
    END IF;
    SELECT c.outcome, c.queue_name, (c.item).id, (c.item).status::text, (c.item).priority,
        (c.item).due_at, (c.item).lease_expires_at, (c.item).hold_reason::text,
        (c.item).created_at, (c.item).updated_at
    INTO outcome, queue_name, id, status, priority, due_at, lease_expires_at, hold_reason,
        created_at, updated_at
    FROM chartdesk_claim(v_user, p_queue, p_now, p_exp, p_max, v_name, coalesce(v_roles, ''),
        p_ip, p_ua, p_request_id, p_batch) AS c;
    -- A refused queue answers an error, and the ordinary path rolls its touch back with the
    -- request: put the old time back (the row stays locked by us until the call ends).
    IF v_touched AND outcome IN ('no_queue', 'not_member') THEN
        UPDATE user_session SET last_seen_at = v_seen WHERE user_session.id = p_sid;
    END IF;
    IF outcome IS NOT NULL THEN
        owner := v_name;
        RETURN NEXT;
    END IF;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS chartdesk_claim_session("
            "text, text, boolean, integer, integer, text, text, timestamptz, timestamptz, "
            "integer, text, text, text, integer)"
        )
