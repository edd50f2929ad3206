"""Queues, claiming, leases, holds and supervisors' assignment.

A lease lives in two columns of `work_item` (`lease_owner_id`, `lease_expires_at`), not in a
database lock: a coder's lease spans many requests. Claiming is one conditional UPDATE
(`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite runs every transaction as BEGIN IMMEDIATE),
and expired leases go back to `ready` through `sweep_expired`, a conditional UPDATE that is
safe to run from every process at once. Every transition is stored as a `WorkItemEvent`
(who, when, from, to, action, reason, and who holds the item afterwards) and written to the
audit log. Services flush and never commit.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, text, update
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth import service as auth_service
from server.auth.principal import Principal
from server.config import get_settings
from server.db import is_sqlite
from server.errors import AppError, Conflict, Forbidden, LeaseExpired, NotFound, ValidationFailed
from server.models import Queue, QueueMember, Status, User, UserRole, WorkItem, WorkItemEvent
from server.models.base import UTCDateTime, utcnow

_TIMES = (bindparam("now", type_=UTCDateTime()),)
_INSERT_ITEM_EVENT = insert(WorkItemEvent.__table__)  # type: ignore[attr-defined]


def _dialect(session: Session) -> str:
    """ "sqlite" or "postgresql": which of a statement's two spellings to run."""
    return "sqlite" if is_sqlite(session) else "postgresql"


QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# Statuses in which an item is the coders' business (a supervisor may assign or move it).
OPEN_STATUSES = (Status.ready, Status.in_progress, Status.on_hold, Status.returned)
SWEEP_BATCH = 500


# ---------------------------------------------------------------- queues and members


def get_queue(session: Session, *, name: str) -> Queue:
    """A queue by name, or NotFound."""
    queue = session.exec(select(Queue).where(Queue.name == name)).first()
    if queue is None:
        raise NotFound(f"No queue named {name}.")
    return queue


def list_queues(session: Session) -> list[Queue]:
    """Every queue, by name."""
    return list(session.exec(select(Queue).order_by(col(Queue.name))).all())


def create_queue(
    session: Session, *, name: str, description: str = "", actor: Principal | None = None
) -> Queue:
    """Create an empty queue (audited when a person does it)."""
    name = name.strip().lower()
    if not QUEUE_NAME.match(name):
        raise AppError(
            "Queue names are 1-64 lowercase letters, digits, '-' or '_'.", status_code=422
        )
    if session.exec(select(Queue).where(Queue.name == name)).first():
        raise Conflict(f"Queue {name} already exists.")
    queue = Queue(name=name, description=description)
    session.add(queue)
    session.flush()
    if actor is not None:
        audit_service.record(
            session,
            actor=actor,
            action=audit_service.Action.queue_admin,
            purpose=None,
            detail=f"create queue={queue.id}",
        )
    return queue


def add_member(session: Session, *, queue_name: str, username: str) -> None:
    """Let a user pull work from a queue (idempotent)."""
    queue = get_queue(session, name=queue_name)
    user = auth_service.find_user(session, username=username)
    if user is None:
        raise NotFound(f"No user named {username}.")
    assert queue.id is not None  # noqa: S101
    assert user.id is not None  # noqa: S101
    if session.get(QueueMember, (queue.id, user.id)) is None:
        session.add(QueueMember(queue_id=queue.id, user_id=user.id))
        session.flush()


def members(session: Session, *, queue_id: int) -> list[str]:
    """Usernames allowed to pull from a queue, sorted."""
    rows = session.exec(
        select(User.username)
        .join(QueueMember, col(QueueMember.user_id) == col(User.id))
        .where(QueueMember.queue_id == queue_id)
        .order_by(col(User.username))
    ).all()
    return list(rows)


def set_members(
    session: Session, *, actor: Principal, queue_name: str, usernames: list[str]
) -> list[str]:
    """Replace the members of a queue; every name must be an existing user."""
    queue = get_queue(session, name=queue_name)
    assert queue.id is not None  # noqa: S101
    wanted = sorted({u.strip().lower() for u in usernames if u.strip()})
    users = (
        list(session.exec(select(User).where(col(User.username).in_(wanted))).all())
        if wanted
        else []
    )
    unknown = sorted(set(wanted) - {u.username for u in users})
    if unknown:
        raise ValidationFailed(
            "Unknown users.",
            details=[{"loc": ["usernames"], "msg": f"no user named {u}"} for u in unknown],
        )
    current = {
        m.user_id: m
        for m in session.exec(select(QueueMember).where(QueueMember.queue_id == queue.id)).all()
    }
    keep = {u.id for u in users}
    for user_id, member in current.items():
        if user_id not in keep:
            session.delete(member)
    for user in users:
        assert user.id is not None  # noqa: S101
        if user.id not in current:
            session.add(QueueMember(queue_id=queue.id, user_id=user.id))
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.queue_admin,
        purpose=None,
        detail=f"members queue={queue.id} count={len(users)}",
    )
    return wanted


def _is_member(session: Session, *, queue_id: int, user_id: int) -> bool:
    return session.get(QueueMember, (queue_id, user_id)) is not None


def coders(session: Session) -> list[str]:
    """Usernames of active people holding the coder role (for supervisors' forms)."""
    rows = session.exec(
        select(User.username)
        .join(UserRole, col(UserRole.user_id) == col(User.id))
        .where(UserRole.role == "coder", col(User.is_active).is_(True))
        .order_by(col(User.username))
    ).all()
    return list(rows)


# ---------------------------------------------------------------- transitions


def _ttl() -> timedelta:
    return timedelta(minutes=get_settings().lease_minutes)


def _user_id(actor: Principal) -> int:
    if actor.kind != "user" or actor.user_id is None:
        raise Forbidden("Only people hold work items.")
    return actor.user_id


def _event(
    session: Session,
    *,
    item_id: int,
    actor_id: int | None,
    action: str,
    from_status: str | None,
    to_status: str | None,
    owner_id: int | None,
    reason: str | None = None,
    at: datetime | None = None,
) -> None:
    # A Core INSERT, as for audit rows: cheaper than the ORM's unit of work for one row.
    session.execute(
        _INSERT_ITEM_EVENT,
        {
            "work_item_id": item_id,
            "at": at or utcnow(),
            "actor_id": actor_id,
            "action": action,
            "from_status": from_status,
            "to_status": to_status,
            "owner_id": owner_id,
            "reason": reason,
        },
    )


def transition(
    session: Session,
    *,
    item: WorkItem,
    to_status: str,
    actor: Principal,
    action: str,
    reason: str | None = None,
    owner_id: int | None = None,
    keep_lease: bool = False,
) -> WorkItem:
    """Move `item` to `to_status` and store the event (who, when, from, to, action, reason).

    The lease is cleared unless `to_status` is in_progress (then `owner_id`, default the
    actor, holds it for the lease time) or `keep_lease` is set. The caller checks that the
    actor may do this (usually through `leased_item`) and writes its own audit event.
    """
    assert item.id is not None  # noqa: S101
    now = utcnow()
    from_status = item.status
    if to_status == Status.in_progress:
        item.lease_owner_id = owner_id if owner_id is not None else actor.user_id
        item.lease_expires_at = now + _ttl()
    elif to_status == Status.on_hold:
        item.lease_owner_id = owner_id if owner_id is not None else item.lease_owner_id
        item.lease_expires_at = None
    elif not keep_lease:
        item.lease_owner_id = owner_id
        item.lease_expires_at = None
    if to_status != Status.on_hold:
        item.hold_reason = None
    item.status = to_status
    item.updated_at = now
    session.add(item)
    _event(
        session,
        item_id=item.id,
        actor_id=actor.user_id,
        action=action,
        from_status=from_status,
        to_status=to_status,
        owner_id=item.lease_owner_id,
        reason=reason,
        at=now,
    )
    session.flush()
    return item


def _was_holder(session: Session, *, item_id: int, user_id: int) -> bool:
    """Whether `user_id` ever held the item (so a late request is 409, not 404)."""
    found = session.exec(
        select(WorkItemEvent.id)
        .where(WorkItemEvent.work_item_id == item_id, WorkItemEvent.owner_id == user_id)
        .limit(1)
    ).first()
    return found is not None


_LOCK_ITEM = (
    select(WorkItem)
    .where(col(WorkItem.id) == bindparam("item_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def lock_item(session: Session, work_item_id: int) -> WorkItem | None:
    """The item, its row locked until the transaction ends (PostgreSQL), re-read fresh."""
    return session.execute(_LOCK_ITEM, {"item_id": work_item_id}).scalar()


def _not_yours(session: Session, *, actor: Principal, work_item_id: int) -> NotFound:
    audit_service.record_denied(
        session,
        actor=actor,
        action=audit_service.Action.access,
        work_item_id=work_item_id,
        detail="not the caller's work item",
    )
    return NotFound("No such work item.")


def leased_item(session: Session, *, actor: Principal, work_item_id: int) -> WorkItem:
    """The item if the caller holds a live lease on it (row locked on PostgreSQL).

    Raises NotFound (404, audited as denied) if the item is not the caller's, and
    LeaseExpired (409) if it was theirs but the lease ran out or went to someone else.
    """
    me = _user_id(actor)
    item = lock_item(session, work_item_id)
    if item is None:
        raise _not_yours(session, actor=actor, work_item_id=work_item_id)
    if item.lease_owner_id == me and item.status == Status.in_progress:
        if item.lease_expires_at is not None and item.lease_expires_at > utcnow():
            return item
        raise LeaseExpired("Your lease on this item has expired; it went back to the queue.")
    if _was_holder(session, item_id=work_item_id, user_id=me):
        raise LeaseExpired("This item is no longer leased to you.")
    raise _not_yours(session, actor=actor, work_item_id=work_item_id)


def my_item(session: Session, *, actor: Principal, work_item_id: int) -> WorkItem:
    """An item in the caller's list (leased, held or returned to them), else 404/409."""
    me = _user_id(actor)
    item = session.get(WorkItem, work_item_id)
    if item is not None and _in_my_list(item, me):
        return item
    if item is not None and _was_holder(session, item_id=work_item_id, user_id=me):
        raise LeaseExpired("This item is no longer leased to you.")
    raise _not_yours(session, actor=actor, work_item_id=work_item_id)


def _in_my_list(item: WorkItem, me: int) -> bool:
    if item.status in (Status.in_progress, Status.on_hold):
        return item.lease_owner_id == me
    if item.status == Status.returned:
        return item.lease_owner_id == me or (item.lease_owner_id is None and item.coded_by_id == me)
    return False


# ---------------------------------------------------------------- claiming


# The hot statements of claiming are built once: SQLAlchemy then reuses their cache keys
# (building a select and hashing it again on every claim was ~15% of a claim's CPU).
_SWEEP = {
    "sqlite": text(
        "UPDATE work_item SET status = 'ready', lease_owner_id = NULL, "
        "lease_expires_at = NULL, updated_at = :now "
        "WHERE status = 'in_progress' AND lease_expires_at < :now "
        "RETURNING id, lease_owner_id"
    ).bindparams(*_TIMES),
    "postgresql": text(
        "WITH expired AS (SELECT id, lease_owner_id FROM work_item "
        "WHERE status = 'in_progress' AND lease_expires_at < :now "
        "LIMIT :batch FOR UPDATE SKIP LOCKED) "
        "UPDATE work_item w SET status = 'ready', lease_owner_id = NULL, "
        "lease_expires_at = NULL, updated_at = :now FROM expired "
        "WHERE w.id = expired.id RETURNING w.id, expired.lease_owner_id"
    ).bindparams(*_TIMES),
}


def sweep_expired(session: Session, *, now: datetime | None = None) -> list[int]:
    """Return expired leases to ready; the ids returned are this call's alone.

    A plain conditional UPDATE: on PostgreSQL it skips rows another sweep (or a claim, or
    the holder's own request) has locked, so any number of processes may run it at once and
    never wait on each other; each expired item is returned by exactly one of them.
    """
    now = now or utcnow()
    stmt = _SWEEP[_dialect(session)]
    params: dict[str, Any] = {"now": now, "batch": SWEEP_BATCH}
    rows = session.execute(stmt, params).all()
    system = Principal(name="lease-sweep", kind="system")
    for item_id, owner in rows:
        _event(
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


def _claimable_queues(session: Session, *, me: int, queue: str | None) -> dict[int, str]:
    """{id: name} of the queues a claim may take from, in one query.

    Named: that queue (404 if unknown, 403 if the caller is not a member); else all of the
    caller's queues.
    """
    if queue is None:
        return dict(session.execute(_MY_QUEUES, {"me": me}).all())
    row = session.execute(_NAMED_QUEUE, {"me": me, "name": queue}).first()
    if row is None:
        raise NotFound(f"No queue named {queue}.")
    if row[2] is None:
        raise Forbidden(f"You are not a member of queue {row[1]}.")
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
    if _dialect(session) == "postgresql":
        session.execute(_LOCK_CODER, {"me": me})
    rows = session.execute(_HELD, {"me": me, "now": now}).all()
    return [
        ItemRow(item=item, queue=queue_name, owner=me_name)
        for item, queue_name in rows
        if item is not None
    ]


_ITEM_COLUMNS = ", ".join(c.name for c in WorkItem.__table__.c)  # type: ignore[attr-defined]
_CLAIM_PARAMS = (*_TIMES, bindparam("exp", type_=UTCDateTime()))
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


def claim_next(session: Session, *, actor: Principal, queue: str | None = None) -> ItemRow | None:
    """Lease the next item to the caller: highest priority, earliest due, oldest first.

    From the named queue (404 if unknown, 403 if not a member) or all the caller's queues.
    If the caller already holds `max_leased_items` live leases, the one held is returned.
    None when nothing is waiting. Eight statements on PostgreSQL: queues, sweep, the coder lock,
    the held leases, the claim (returning the whole row), its event and audit rows, commit.
    """
    me = _user_id(actor)
    now = utcnow()
    queues = _claimable_queues(session, me=me, queue=queue)
    sweep_expired(session, now=now)
    held = _lock_coder_and_held(session, me=me, me_name=actor.name, now=now)
    if len(held) >= get_settings().max_leased_items:
        return held[0]
    if not queues:
        return None
    item = session.execute(
        _CLAIM[_dialect(session)],
        {"queues": list(queues), "me": me, "exp": now + _ttl(), "now": now},
        execution_options={"populate_existing": True},
    ).scalar()
    if item is None:
        return None
    assert item.id is not None  # noqa: S101
    _event(
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


def heartbeat(session: Session, *, actor: Principal, work_item_id: int) -> WorkItem:
    """Extend the caller's lease by the lease time (409 if it already ran out)."""
    item = leased_item(session, actor=actor, work_item_id=work_item_id)
    item.lease_expires_at = utcnow() + _ttl()
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
    session: Session, *, actor: Principal, work_item_id: int, reason: str, note: str = ""
) -> WorkItem:
    """Put a leased item on hold with a reason from the configured list.

    The free-text note may hold patient data and is not stored (no encrypted store for it
    exists yet); only the reason code goes into the item and its event.
    """
    reasons = get_settings().hold_reasons
    if reason not in reasons:
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
        if not _in_my_list(item, _user_id(actor)):
            raise LeaseExpired("This item is no longer yours.")
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


# ---------------------------------------------------------------- supervisors


def _open_item(session: Session, work_item_id: int) -> WorkItem:
    item = lock_item(session, work_item_id)
    if item is None:
        raise NotFound("No such work item.")
    if item.status not in OPEN_STATUSES:
        raise Conflict(f"The item is {item.status}; only open items can be changed.")
    return item


def assign(session: Session, *, actor: Principal, work_item_id: int, username: str) -> WorkItem:
    """Lease an item straight to a coder who is a member of its queue (also reassigns)."""
    item = _open_item(session, work_item_id)
    user = auth_service.find_user(session, username=username)
    if user is None or not user.is_active:
        raise NotFound(f"No active user named {username}.")
    assert user.id is not None  # noqa: S101
    queue = session.get(Queue, item.queue_id)
    assert queue is not None  # noqa: S101
    if not _is_member(session, queue_id=item.queue_id, user_id=user.id):
        raise ValidationFailed(
            f"{user.username} is not a member of queue {queue.name}; add them first.",
            details=[{"loc": ["username"], "msg": "not a member of the item's queue"}],
        )
    action = (
        "reassign"
        if item.lease_owner_id is not None and item.lease_owner_id != user.id
        else "assign"
    )
    transition(
        session,
        item=item,
        to_status=Status.in_progress,
        actor=actor,
        action=action,
        owner_id=user.id,
    )
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.assign,
        work_item_id=work_item_id,
        purpose=None,
        detail=f"{action} to user {user.id}",
    )
    return item


def _changed(
    session: Session,
    *,
    actor: Principal,
    item: WorkItem,
    action: str,
    audit_action: audit_service.Action,
    detail: str,
) -> WorkItem:
    """Store a supervisor's change to an open item (status unchanged): event and audit."""
    assert item.id is not None  # noqa: S101
    item.updated_at = utcnow()
    session.add(item)
    _event(
        session,
        item_id=item.id,
        actor_id=actor.user_id,
        action=action,
        from_status=item.status,
        to_status=item.status,
        owner_id=item.lease_owner_id,
        reason=detail,
    )
    session.flush()
    audit_service.record(
        session, actor=actor, action=audit_action, work_item_id=item.id, purpose=None, detail=detail
    )
    return item


def move(session: Session, *, actor: Principal, work_item_id: int, queue: str) -> WorkItem:
    """Move an open item to another queue (a lease, if any, stays with its holder)."""
    item = _open_item(session, work_item_id)
    target = get_queue(session, name=queue)
    assert target.id is not None  # noqa: S101
    assert item.id is not None  # noqa: S101
    if target.id == item.queue_id:
        return item
    old = item.queue_id
    item.queue_id = target.id
    return _changed(
        session,
        actor=actor,
        item=item,
        action="move",
        audit_action=audit_service.Action.move,
        detail=f"queue {old} -> {target.id}",
    )


def set_priority(
    session: Session, *, actor: Principal, work_item_id: int, priority: int
) -> WorkItem:
    """Change an open item's priority (higher is pulled first)."""
    item = _open_item(session, work_item_id)
    assert item.id is not None  # noqa: S101
    old = item.priority
    item.priority = priority
    return _changed(
        session,
        actor=actor,
        item=item,
        action="priority",
        audit_action=audit_service.Action.queue_admin,
        detail=f"priority {old} -> {priority}",
    )


@dataclass
class QueueStats:
    """What the supervisor dashboard shows for one queue."""

    name: str
    ready: int
    in_progress: int
    on_hold: int
    oldest_ready_age_seconds: int | None
    done_today: int
    members: list[str]


def _start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def queue_stats(session: Session) -> list[QueueStats]:
    """Per queue: ready, in progress, on hold, oldest ready age and items coded today (UTC)."""
    now = utcnow()
    counts: dict[tuple[int, str], int] = {}
    for queue_id, status, n in session.exec(
        select(WorkItem.queue_id, WorkItem.status, func.count())
        .where(col(WorkItem.status).in_([Status.ready, Status.in_progress, Status.on_hold]))
        .group_by(col(WorkItem.queue_id), col(WorkItem.status))
    ).all():
        counts[(queue_id, status)] = n
    oldest: dict[int, datetime] = {}
    for queue_id, created in session.exec(
        select(WorkItem.queue_id, func.min(WorkItem.created_at))
        .where(WorkItem.status == Status.ready)
        .group_by(col(WorkItem.queue_id))
    ).all():
        if created is not None:
            oldest[queue_id] = _aware(created)
    done: dict[int, int] = dict(
        session.exec(
            select(WorkItem.queue_id, func.count())
            .where(col(WorkItem.coded_at) >= _start_of_day(now))
            .group_by(col(WorkItem.queue_id))
        ).all()
    )
    member_rows = session.exec(
        select(QueueMember.queue_id, User.username)
        .join(User, col(User.id) == col(QueueMember.user_id))
        .order_by(col(User.username))
    ).all()
    by_queue: dict[int, list[str]] = {}
    for queue_id, username in member_rows:
        by_queue.setdefault(queue_id, []).append(username)
    result = []
    for queue in list_queues(session):
        assert queue.id is not None  # noqa: S101
        age = oldest.get(queue.id)
        result.append(
            QueueStats(
                name=queue.name,
                ready=counts.get((queue.id, Status.ready), 0),
                in_progress=counts.get((queue.id, Status.in_progress), 0),
                on_hold=counts.get((queue.id, Status.on_hold), 0),
                oldest_ready_age_seconds=int((now - age).total_seconds()) if age else None,
                done_today=done.get(queue.id, 0),
                members=by_queue.get(queue.id, []),
            )
        )
    return result


def _aware(value: Any) -> datetime:
    """min() over a UTCDateTime column comes back raw (a string or naive time on SQLite)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)  # noqa: S101
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---------------------------------------------------------------- listing


@dataclass
class ItemRow:
    """A work item as lists show it: no patient data, names instead of ids."""

    item: WorkItem
    queue: str
    owner: str | None


def _encode_cursor(item_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{item_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "id":
            raise ValueError(raw)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "Bad cursor.", details=[{"loc": ["cursor"], "msg": "not a cursor"}]
        ) from exc


def _with_names(stmt: Any) -> Any:
    """A select of work items, with each item's queue name and holder's username added."""
    owner = User.__table__.alias("owner")  # type: ignore[attr-defined]
    stmt = stmt.join(Queue, col(Queue.id) == col(WorkItem.queue_id)).outerjoin(
        owner, owner.c.id == col(WorkItem.lease_owner_id)
    )
    return stmt.add_columns(col(Queue.name), owner.c.username)


def _rows(session: Session, stmt: Any, params: dict[str, Any] | None = None) -> list[ItemRow]:
    """ItemRows from a `_with_names` select."""
    return [ItemRow(item=i, queue=q, owner=o) for i, q, o in session.execute(stmt, params)]


_ITEM_ROW = _with_names(select(WorkItem).where(col(WorkItem.id) == bindparam("item_id")))


def list_items(
    session: Session,
    *,
    queue: str | None = None,
    status: str | None = None,
    coder: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ItemRow], str | None]:
    """Supervisors' item list, newest first, filtered; keyset pagination by id."""
    stmt = select(WorkItem)
    if queue:
        stmt = stmt.where(WorkItem.queue_id == get_queue(session, name=queue).id)
    if status:
        if status not in {s.value for s in Status}:
            raise ValidationFailed(
                "Unknown status.", details=[{"loc": ["status"], "msg": "not a status"}]
            )
        stmt = stmt.where(WorkItem.status == status)
    if coder:
        user = auth_service.find_user(session, username=coder)
        if user is None:
            return [], None
        stmt = stmt.where(WorkItem.lease_owner_id == user.id)
    if cursor:
        stmt = stmt.where(col(WorkItem.id) < _decode_cursor(cursor))
    stmt = stmt.order_by(col(WorkItem.id).desc()).limit(limit + 1)
    rows = _rows(session, _with_names(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1].item.id
        assert last is not None  # noqa: S101
        next_cursor = _encode_cursor(last)
    return rows, next_cursor


def my_items(session: Session, *, actor: Principal) -> list[ItemRow]:
    """The caller's items: returned by billing first, then leased, then held."""
    me = _user_id(actor)
    stmt = (
        select(WorkItem)
        .where(
            or_(
                and_(
                    col(WorkItem.status).in_([Status.in_progress, Status.on_hold, Status.returned]),
                    col(WorkItem.lease_owner_id) == me,
                ),
                and_(
                    col(WorkItem.status) == Status.returned,
                    col(WorkItem.lease_owner_id).is_(None),
                    col(WorkItem.coded_by_id) == me,
                ),
            )
        )
        # Returned by billing first (issue 6: "first in their list"), then leased, then held.
        .order_by(
            col(WorkItem.status) != Status.returned,
            col(WorkItem.status) != Status.in_progress,
            col(WorkItem.id),
        )
    )
    return _rows(session, _with_names(stmt))


def item_row(session: Session, *, item: WorkItem) -> ItemRow:
    """One item with its queue and holder names."""
    return _rows(session, _ITEM_ROW, {"item_id": item.id})[0]


def expire_now(session: Session, *, work_item_id: int) -> None:
    """Tests and operators: make a lease end now (the next sweep returns the item)."""
    session.execute(
        update(WorkItem)
        .where(col(WorkItem.id) == work_item_id)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
