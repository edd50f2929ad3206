"""The coder's side: Next (claim), heartbeat, release, hold, resume, and the lease sweep.

Claiming is one conditional UPDATE (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite runs
every transaction as BEGIN IMMEDIATE), and expired leases go back to `ready` through
`sweep_expired`, a conditional UPDATE that is safe to run from every process at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, column, text
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.config import get_settings
from server.db import AsyncPool
from server.errors import Conflict, Forbidden, LeaseExpired, NotFound, ValidationFailed
from server.models import Queue, QueueMember, Status, User, WorkItem
from server.models.base import UTCDateTime, utcnow
from server.queue.items import (
    TIMES,
    ItemRow,
    dialect,
    in_my_list,
    lease_ttl,
    leased_item,
    lock_item,
    my_item,
    record_event,
    transition,
    user_id_of,
)

SWEEP_BATCH = 500


# The hot statements of claiming are built once: SQLAlchemy then reuses their cache keys
# (building a select and hashing it again on every claim was ~15% of a claim's CPU).
_SWEEP = {
    "sqlite": text(
        "UPDATE work_item SET status = 'ready', lease_owner_id = NULL, "
        "lease_expires_at = NULL, updated_at = :now "
        "WHERE status = 'in_progress' AND lease_expires_at < :now "
        "RETURNING id, lease_owner_id"
    ).bindparams(*TIMES),
    "postgresql": text(
        "WITH expired AS (SELECT id, lease_owner_id FROM work_item "
        "WHERE status = 'in_progress' AND lease_expires_at < :now "
        "LIMIT :batch FOR UPDATE SKIP LOCKED) "
        "UPDATE work_item w SET status = 'ready', lease_owner_id = NULL, "
        "lease_expires_at = NULL, updated_at = :now FROM expired "
        "WHERE w.id = expired.id RETURNING w.id, expired.lease_owner_id"
    ).bindparams(*TIMES),
}


def sweep_expired(session: Session, *, now: datetime | None = None) -> list[int]:
    """Return expired leases to ready; the ids returned are this call's alone.

    A plain conditional UPDATE: on PostgreSQL it skips rows another sweep (or a claim, or
    the holder's own request) has locked, so any number of processes may run it at once and
    never wait on each other; each expired item is returned by exactly one of them.
    """
    now = now or utcnow()
    stmt = _SWEEP[dialect(session)]
    params: dict[str, Any] = {"now": now, "batch": SWEEP_BATCH}
    rows = session.execute(stmt, params).all()
    system = Principal(name="lease-sweep", kind="system")
    for item_id, owner in rows:
        record_event(
            session,
            item_id=item_id,
            actor_id=None,
            action="expire",
            from_status=Status.in_progress,
            to_status=Status.ready,
            owner_id=None,
            reason=f"lease expired (holder {owner})" if owner else "lease expired",
            at=now,
        )
        audit_service.record(
            session,
            actor=system,
            action=audit_service.Action.release,
            work_item_id=item_id,
            purpose=None,
            detail="lease expired",
        )
    if rows:
        session.flush()
    return [r[0] for r in rows]


_MY_QUEUES = (
    select(Queue.id, Queue.name)
    .join(QueueMember, col(QueueMember.queue_id) == col(Queue.id))
    .where(col(QueueMember.user_id) == bindparam("me"))
)
_NAMED_QUEUE = (
    select(Queue.id, Queue.name, QueueMember.user_id)
    .outerjoin(
        QueueMember,
        and_(
            col(QueueMember.queue_id) == col(Queue.id),
            col(QueueMember.user_id) == bindparam("me"),
        ),
    )
    .where(col(Queue.name) == bindparam("name"))
)


def _refuse_queue(outcome: str | None, *, queue: str | None, queue_name: str | None) -> None:
    """A named queue the claim may not take from: unknown (404) or not the caller's (403).
    One wording for the plain path and both SQL functions' outcomes."""
    if outcome == "no_queue":
        raise NotFound(f"No queue named {queue}.")
    if outcome == "not_member":
        raise Forbidden(f"You are not a member of queue {queue_name}.")


def _claimable_queues(session: Session, *, me: int, queue: str | None) -> dict[int, str]:
    """{id: name} of the queues a claim may take from, in one query.

    Named: that queue (404 if unknown, 403 if the caller is not a member); else all of the
    caller's queues.
    """
    if queue is None:
        return dict(session.execute(_MY_QUEUES, {"me": me}).all())
    row = session.execute(_NAMED_QUEUE, {"me": me, "name": queue}).first()
    if row is None or row[2] is None:
        _refuse_queue(
            "no_queue" if row is None else "not_member",
            queue=queue,
            queue_name=row[1] if row is not None else None,
        )
    assert row is not None  # noqa: S101 - refused above
    return {row[0]: row[1]}


_HELD = (
    select(WorkItem, Queue.name)
    .select_from(User)
    .outerjoin(
        WorkItem,
        and_(
            col(WorkItem.lease_owner_id) == col(User.id),
            col(WorkItem.status) == Status.in_progress,
            col(WorkItem.lease_expires_at) > bindparam("now", type_=UTCDateTime()),
        ),
    )
    .outerjoin(Queue, col(Queue.id) == col(WorkItem.queue_id))
    .where(col(User.id) == bindparam("me"))
    .order_by(col(WorkItem.lease_expires_at))
)
# PostgreSQL: the caller's user row, locked FOR NO KEY UPDATE (self-conflicting, so one
# claim at a time per coder; foreign-key checks take KEY SHARE and are not blocked). It is
# its own statement on purpose: a statement that waits for a row lock re-reads only the
# locked row afterwards, so leases read by the same statement would come from the snapshot
# taken before the wait and miss the ones the other tab just committed (8 parallel Nexts
# gave 8 leases with a limit of 1). The held leases are read by the next statement, whose
# snapshot begins after the lock was granted.
_LOCK_CODER = (
    select(col(User.id)).where(col(User.id) == bindparam("me")).with_for_update(key_share=True)
)


def _lock_coder_and_held(
    session: Session, *, me: int, me_name: str, now: datetime
) -> list[ItemRow]:
    """The live leases the caller holds, soonest to expire first.

    On PostgreSQL it first locks the caller's user row (FOR NO KEY UPDATE) until the claim
    commits: one claim at a time per coder (two tabs pressing Next), without blocking others.
    On SQLite every transaction here already holds the one write lock.
    """
    if dialect(session) == "postgresql":
        session.execute(_LOCK_CODER, {"me": me})
    rows = session.execute(_HELD, {"me": me, "now": now}).all()
    return [
        ItemRow(item=item, queue=queue_name, owner=me_name)
        for item, queue_name in rows
        if item is not None
    ]


_ITEM_COLUMNS = ", ".join(c.name for c in WorkItem.__table__.c)  # type: ignore[attr-defined]
_CLAIM_PARAMS = (*TIMES, bindparam("exp", type_=UTCDateTime()))
_CLAIM_SQLITE = (
    "UPDATE work_item SET status = 'in_progress', lease_owner_id = :me, "
    "lease_expires_at = :exp, updated_at = :now "
    "WHERE id = (SELECT id FROM work_item "
    "WHERE queue_id IN :queues AND status = 'ready' "
    "ORDER BY priority DESC, due_at IS NULL, due_at, id LIMIT 1) "
    "AND status = 'ready' RETURNING "
)
# The head of each queue through the partial index (one LIMIT 1 per queue), then the best of
# those heads. `queue_id = ANY(...)` cannot read the index in order: on a 200k-item queue it
# sorted everything on every claim (0.5 s instead of 0.1 ms).
_CLAIM_PG = (
    "UPDATE work_item SET status = 'in_progress', lease_owner_id = :me, "
    "lease_expires_at = :exp, updated_at = :now "
    "WHERE id = (SELECT head.id FROM unnest(:queues) AS q(queue_id) "
    "CROSS JOIN LATERAL (SELECT id, priority, due_at FROM work_item "
    "WHERE queue_id = q.queue_id AND status = 'ready' "
    "ORDER BY priority DESC, due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) AS head "
    "ORDER BY head.priority DESC, head.due_at, head.id LIMIT 1) "
    "AND status = 'ready' RETURNING "
)
_CLAIM = {
    "sqlite": select(WorkItem).from_statement(
        text(_CLAIM_SQLITE + _ITEM_COLUMNS)
        .bindparams(*_CLAIM_PARAMS, bindparam("queues", expanding=True))
        .columns(*WorkItem.__table__.c)  # type: ignore[attr-defined]
    ),
    "postgresql": select(WorkItem).from_statement(
        text(_CLAIM_PG + _ITEM_COLUMNS)
        .bindparams(*_CLAIM_PARAMS, bindparam("queues", type_=postgresql.ARRAY(postgresql.INTEGER)))
        .columns(*WorkItem.__table__.c)  # type: ignore[attr-defined]
    ),
}


# PostgreSQL: the whole claim in one round trip, `chartdesk_claim` (migration 0021). Each
# statement inside it takes its own snapshot, so the coder lock still comes before the read
# of the held leases (see _LOCK_CODER). The item comes back as a whole row, its columns named
# in the model's order (`.columns()` matches by position; the table's order is the migrations').
_FN_ITEM_COLUMNS = ", ".join(
    f"(c.item).{c.name}"
    for c in WorkItem.__table__.c  # type: ignore[attr-defined]
)
_CLAIM_FN = select(WorkItem, column("outcome"), column("queue_name")).from_statement(
    text(
        f"SELECT c.outcome, c.queue_name, {_FN_ITEM_COLUMNS} FROM chartdesk_claim("  # noqa: S608  # nosec B608 - fixed column names
        ":me, :queue, :now, :exp, :max, :actor, :roles, :ip, :ua, :rid, :batch) AS c"
    )
    .bindparams(*_CLAIM_PARAMS)
    .columns(
        column("outcome"),
        column("queue_name"),
        *WorkItem.__table__.c,  # type: ignore[attr-defined]
    )
)


def _claim_in_one_call(
    session: Session, *, actor: Principal, me: int, queue: str | None, now: datetime
) -> ItemRow | None:
    session.flush()  # pending ORM changes (the session's last-seen time) go first
    row = session.execute(
        _CLAIM_FN,
        {
            "me": me,
            "queue": queue,
            "now": now,
            "exp": now + lease_ttl(),
            "max": get_settings().max_leased_items,
            "actor": actor.name,
            "roles": " ".join(sorted(actor.roles | actor.scopes)),
            "ip": actor.source_ip,
            "ua": (actor.user_agent or "")[:300] or None,
            "rid": actor.request_id,
            "batch": SWEEP_BATCH,
        },
        execution_options={"populate_existing": True},
    ).first()
    if row is None:
        return None
    item, outcome, queue_name = row
    _refuse_queue(outcome, queue=queue, queue_name=queue_name)
    return ItemRow(item=item, queue=queue_name, owner=actor.name)


def claim_next(session: Session, *, actor: Principal, queue: str | None = None) -> ItemRow | None:
    """Lease the next item to the caller: highest priority, earliest due, oldest first.

    From the named queue (404 if unknown, 403 if not a member) or all the caller's queues.
    If the caller already holds `max_leased_items` live leases, the one held is returned.
    None when nothing is waiting. On PostgreSQL one call of `chartdesk_claim` (queues,
    sweep, coder lock, held leases, claim, its event and audit rows) and the commit; on
    SQLite the same steps as separate statements.
    """
    me = user_id_of(actor)
    now = utcnow()
    if dialect(session) == "postgresql":
        return _claim_in_one_call(session, actor=actor, me=me, queue=queue, now=now)
    queues = _claimable_queues(session, me=me, queue=queue)
    sweep_expired(session, now=now)
    held = _lock_coder_and_held(session, me=me, me_name=actor.name, now=now)
    if len(held) >= get_settings().max_leased_items:
        return held[0]
    if not queues:
        return None
    item = session.execute(
        _CLAIM[dialect(session)],
        {"queues": list(queues), "me": me, "exp": now + lease_ttl(), "now": now},
        execution_options={"populate_existing": True},
    ).scalar()
    if item is None:
        return None
    assert item.id is not None  # noqa: S101
    record_event(
        session,
        item_id=item.id,
        actor_id=me,
        action="claim",
        from_status=Status.ready,
        to_status=Status.in_progress,
        owner_id=me,
        at=now,
    )
    audit_service.record(
        session, actor=actor, action=audit_service.Action.claim, work_item_id=item.id
    )
    return ItemRow(item=item, queue=queues[item.queue_id], owner=actor.name)


# Next in one round trip (PostgreSQL, cookie sessions): `chartdesk_claim_session`
# (migration 0025) checks the session as session_principal + RequireRole(coder) would,
# touches its last activity and calls chartdesk_claim; autocommit makes the call its own
# transaction, so the claim, its item event and its audit row commit together.
_CLAIM_SESSION_SQL = (
    "SELECT outcome, queue_name, owner, id, status, priority, due_at, lease_expires_at, "
    "hold_reason, created_at, updated_at FROM chartdesk_claim_session("
    "%(sid)s, %(csrf)s, %(activity)s, %(idle)s, %(max_hours)s, %(role)s, %(queue)s, %(now)s, "
    "%(exp)s, %(max)s, %(ip)s, %(ua)s, %(rid)s, %(batch)s)"
)
REFUSED = "refused"


async def claim_next_in_one_trip(
    pool: AsyncPool,
    *,
    session_hash: str,
    csrf: str,
    role: str,
    activity: bool,
    queue: str | None,
    ip: str | None,
    ua: str | None,
    request_id: str | None,
) -> dict[str, Any] | str | None:
    """Next as one statement: the item (WorkItemView's fields), None (nothing) or REFUSED.

    REFUSED means the session check said no and nothing was written: the caller runs the
    ordinary access rule, which answers (and audits) the refusal as every route does.
    """
    settings = get_settings()
    now = utcnow()
    row = await pool.fetchone(
        _CLAIM_SESSION_SQL,
        {
            "sid": session_hash,
            "csrf": csrf,
            "activity": activity,
            "idle": settings.session_idle_minutes,
            "max_hours": settings.session_max_hours,
            "role": role,
            "queue": queue,
            "now": now,
            "exp": now + lease_ttl(),
            "max": settings.max_leased_items,
            "ip": ip,
            "ua": (ua or "")[:300] or None,
            "rid": request_id,
            "batch": SWEEP_BATCH,
        },
    )
    if row is None:
        return None
    outcome, queue_name, owner, item_id, status, priority, due_at, expires, hold, made, upd = row
    if outcome == REFUSED:
        return REFUSED
    _refuse_queue(outcome, queue=queue, queue_name=queue_name)
    made = made.astimezone(UTC)
    return {
        "id": item_id,
        "queue": queue_name,
        "status": status,
        "priority": priority,
        "due_at": due_at.astimezone(UTC) if due_at else None,
        "lease_owner": owner,
        "lease_expires_at": expires.astimezone(UTC) if expires else None,
        "hold_reason": hold,
        "created_at": made,
        "updated_at": upd.astimezone(UTC),
        "age_seconds": max(0, int((now - made).total_seconds())),
    }


def heartbeat(session: Session, *, actor: Principal, work_item_id: int) -> WorkItem:
    """Extend the caller's lease by the lease time (409 if it already ran out)."""
    item = leased_item(session, actor=actor, work_item_id=work_item_id)
    item.lease_expires_at = utcnow() + lease_ttl()
    session.add(item)
    session.flush()
    return item


def release(session: Session, *, actor: Principal, work_item_id: int) -> WorkItem:
    """Give a leased item back to its queue."""
    item = leased_item(session, actor=actor, work_item_id=work_item_id)
    transition(session, item=item, to_status=Status.ready, actor=actor, action="release")
    audit_service.record(
        session, actor=actor, action=audit_service.Action.release, work_item_id=work_item_id
    )
    return item


def hold(
    session: Session,
    *,
    actor: Principal,
    work_item_id: int,
    reason: str,
    note: str = "",
    listed: bool = True,
) -> WorkItem:
    """Put a leased item on hold with a reason from the configured list.

    The free-text note may hold patient data and is not stored (no encrypted store for it
    exists yet); only the reason code goes into the item and its event. `listed=False`: a
    reason the server itself gives (a physician query holds its item whatever the list).
    """
    reasons = get_settings().hold_reasons
    if listed and reason not in reasons:
        raise ValidationFailed(
            "Pick a hold reason from the list.",
            details=[{"loc": ["reason"], "msg": f"one of: {', '.join(reasons)}"}],
        )
    item = leased_item(session, actor=actor, work_item_id=work_item_id)
    transition(
        session, item=item, to_status=Status.on_hold, actor=actor, action="hold", reason=reason
    )
    item.hold_reason = reason
    session.add(item)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.hold,
        work_item_id=work_item_id,
        detail=reason,
    )
    return item


def resume(session: Session, *, actor: Principal, work_item_id: int) -> WorkItem:
    """Take a held (or returned) item back into work, leased to its holder.

    The holder resumes their own items; a supervisor may resume anyone's (the item goes
    back to its holder, or to the queue if it has none).
    """
    is_supervisor = actor.has_role("supervisor")
    if is_supervisor:
        item = lock_item(session, work_item_id)
        if item is None:
            raise NotFound("No such work item.")
    else:
        item = my_item(session, actor=actor, work_item_id=work_item_id)
        item = lock_item(session, work_item_id) or item
        if not in_my_list(item, user_id_of(actor)):
            raise LeaseExpired("This item is no longer yours.")
    if item.status == Status.in_progress and item.lease_owner_id == actor.user_id:
        # A second Resume (a stale tab, a double click): the first one already opened it.
        raise Conflict(
            "it is already in progress with you (resumed a moment ago, perhaps in another "
            "tab). Press Open on its line."
        )
    if item.status not in (Status.on_hold, Status.returned):
        raise Conflict("Only held or returned items can be resumed.")
    owner = item.lease_owner_id or item.coded_by_id
    if owner is None:
        transition(session, item=item, to_status=Status.ready, actor=actor, action="resume")
    else:
        transition(
            session,
            item=item,
            to_status=Status.in_progress,
            actor=actor,
            action="resume",
            owner_id=owner,
        )
    audit_service.record(
        session, actor=actor, action=audit_service.Action.resume, work_item_id=work_item_id
    )
    return item
