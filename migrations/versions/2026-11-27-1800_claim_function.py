"""The claim as one round trip on PostgreSQL: `chartdesk_claim(...)` (issue 23).

One call does what `claim_next` did in eight statements: the caller's queues, the lease
sweep (with its item events and audit rows), the coder lock, the held leases, the claim, its
item event and its audit row. A PL/pgSQL function on purpose, not one CTE: under READ
COMMITTED each statement of a function takes a fresh snapshot, so the held leases are read
after the coder lock was granted (a single statement that waits for a row lock keeps its old
snapshot and would miss the lease another tab just committed). The audit rows are ordinary
INSERTs in the caller's transaction: `txid` comes from the column default, and the sealer
chains them like any other event. SQLite has no such function and keeps the plain path.

Revision ID: 0021
Revises: 0023
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION chartdesk_claim(
    p_me integer, p_queue text, p_now timestamptz, p_exp timestamptz, p_max integer,
    p_actor text, p_roles text, p_ip text, p_ua text, p_request_id text, p_batch integer
) RETURNS TABLE (outcome text, queue_name text, item work_item)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_queues integer[];
    v_qid integer;
    v_member integer;
    v_qname text;
    v_item work_item;
BEGIN
    -- The caller's queues: the named one (unknown, or not a member: say which) or all.
    IF p_queue IS NULL THEN
        SELECT coalesce(array_agg(m.queue_id), '{}') INTO v_queues
        FROM queue_member m WHERE m.user_id = p_me;
    ELSE
        SELECT q.id, q.name, m.user_id INTO v_qid, v_qname, v_member
        FROM work_queue q LEFT JOIN queue_member m ON m.queue_id = q.id AND m.user_id = p_me
        WHERE q.name = p_queue;
        IF v_qid IS NULL THEN
            RETURN QUERY SELECT 'no_queue'::text, NULL::text, NULL::work_item;
            RETURN;
        END IF;
        IF v_member IS NULL THEN
            RETURN QUERY SELECT 'not_member'::text, v_qname, NULL::work_item;
            RETURN;
        END IF;
        v_queues := ARRAY[v_qid];
    END IF;

    -- The lease sweep (as claiming.sweep_expired): expired leases back to ready, each with
    -- its item event and the system's audit row; skips rows others hold locked.
    WITH expired AS (
        SELECT w.id, w.lease_owner_id FROM work_item w
        WHERE w.status = 'in_progress' AND w.lease_expires_at < p_now
        LIMIT p_batch FOR UPDATE SKIP LOCKED
    ), swept AS (
        UPDATE work_item w SET status = 'ready', lease_owner_id = NULL,
            lease_expires_at = NULL, updated_at = p_now
        FROM expired WHERE w.id = expired.id
        RETURNING w.id, expired.lease_owner_id AS owner
    ), events AS (
        INSERT INTO work_item_event
            (work_item_id, at, actor_id, action, from_status, to_status, owner_id, reason)
        SELECT s.id, p_now, NULL, 'expire', 'in_progress', 'ready', NULL,
            CASE WHEN s.owner IS NULL THEN 'lease expired'
                 ELSE 'lease expired (holder ' || s.owner || ')' END
        FROM swept s
    )
    INSERT INTO audit_event
        (time, action, outcome, actor, actor_kind, actor_roles, work_item_id, detail)
    SELECT p_now, 'release', 'success', 'lease-sweep', 'system', '', s.id, 'lease expired'
    FROM swept s ORDER BY s.id;

    -- One claim at a time per coder (FOR NO KEY UPDATE: foreign-key checks still pass).
    PERFORM 1 FROM app_user u WHERE u.id = p_me FOR NO KEY UPDATE;

    -- Held live leases, read with a snapshot taken after the lock was granted.
    IF (SELECT count(*) FROM work_item w WHERE w.lease_owner_id = p_me
        AND w.status = 'in_progress' AND w.lease_expires_at > p_now) >= p_max THEN
        RETURN QUERY SELECT 'held'::text, q.name::text, w
            FROM work_item w JOIN work_queue q ON q.id = w.queue_id
            WHERE w.lease_owner_id = p_me AND w.status = 'in_progress'
              AND w.lease_expires_at > p_now
            ORDER BY w.lease_expires_at LIMIT 1;
        RETURN;
    END IF;
    IF cardinality(v_queues) = 0 THEN
        RETURN;
    END IF;

    -- The claim: the head of each queue through the partial index, then the best head.
    UPDATE work_item w SET status = 'in_progress', lease_owner_id = p_me,
        lease_expires_at = p_exp, updated_at = p_now
    WHERE w.id = (
        SELECT head.id FROM unnest(v_queues) AS qq(queue_id)
        CROSS JOIN LATERAL (
            SELECT x.id, x.priority, x.due_at FROM work_item x
            WHERE x.queue_id = qq.queue_id AND x.status = 'ready'
            ORDER BY x.priority DESC, x.due_at, x.id LIMIT 1 FOR UPDATE SKIP LOCKED
        ) AS head
        ORDER BY head.priority DESC, head.due_at, head.id LIMIT 1
    ) AND w.status = 'ready'
    RETURNING w.* INTO v_item;
    IF v_item.id IS NULL THEN
        RETURN;
    END IF;

    INSERT INTO work_item_event
        (work_item_id, at, actor_id, action, from_status, to_status, owner_id, reason)
    VALUES (v_item.id, p_now, p_me, 'claim', 'ready', 'in_progress', p_me, NULL);
    INSERT INTO audit_event (time, action, outcome, actor, actor_kind, actor_roles,
        work_item_id, source_ip, user_agent, request_id, purpose)
    VALUES (p_now, 'claim', 'success', p_actor, 'user', p_roles, v_item.id, p_ip, p_ua,
        p_request_id, 'TREAT');
    SELECT q.name INTO v_qname FROM work_queue q WHERE q.id = v_item.queue_id;
    RETURN QUERY SELECT 'claimed'::text, v_qname, v_item;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS chartdesk_claim("
            "integer, text, timestamptz, timestamptz, integer, text, text, text, text, text, "
            "integer)"
        )
