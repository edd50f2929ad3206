"""Work items: the row lock, transitions and their events, and whose item is whose.

A lease lives in two columns of `work_item` (`lease_owner_id`, `lease_expires_at`), not in a
database lock: a coder's lease spans many requests. Every transition is stored as a
`WorkItemEvent` (who, when, from, to, action, reason, and who holds the item afterwards) and
written to the audit log. The other queue modules build on these. Services flush and never
commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.config import get_settings
from server.db import is_sqlite
from server.errors import Conflict, Forbidden, LeaseExpired, NotFound
from server.models import Queue, Status, User, WorkItem, WorkItemEvent
from server.models.base import UTCDateTime, utcnow
from server.reports import summary

TIMES = (bindparam("now", type_=UTCDateTime()),)
_INSERT_ITEM_EVENT = insert(WorkItemEvent.__table__)  # type: ignore[attr-defined]


def dialect(session: Session) -> str:
    """ "sqlite" or "postgresql": which of a statement's two spellings to run."""
    return "sqlite" if is_sqlite(session) else "postgresql"


# Statuses in which an item is the coders' business (a supervisor may assign or move it).
OPEN_STATUSES = (Status.ready, Status.in_progress, Status.on_hold, Status.returned)


def lease_ttl() -> timedelta:
    return timedelta(minutes=get_settings().lease_minutes)


def user_id_of(actor: Principal) -> int:
    if actor.kind != "user" or actor.user_id is None:
        raise Forbidden("Only people hold work items.")
    return actor.user_id


def record_event(
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
    # A submit keeps the start of the lease it ends (migration 0023), so productivity reads
    # a window's submits alone instead of looking each lease start up at report time.
    started = lease_start_of(session, item_id=item_id) if action == "submit" else None
    at = at or utcnow()
    # A Core INSERT, as for audit rows: cheaper than the ORM's unit of work for one row.
    session.execute(
        _INSERT_ITEM_EVENT,
        {
            "work_item_id": item_id,
            "at": at,
            "actor_id": actor_id,
            "action": action,
            "from_status": from_status,
            "to_status": to_status,
            "owner_id": owner_id,
            "reason": reason,
            "lease_started_at": started,
        },
    )
    if action == "submit":
        # The day's summary in the same transaction (migration 0027): productivity and
        # throughput read whole days from it.
        summary.add_submit(session, item_id=item_id, coder_id=actor_id, at=at, started=started)


# Events that hand an item to a coder in progress: a lease starts.
LEASE_STARTS = ("claim", "assign", "reassign", "resume")


def lease_start_of(session: Session, *, item_id: int) -> datetime | None:
    """When the item's current lease started: its last event into progress by a lease start
    (`claim`, `assign`, `reassign`, `resume`), None if it never had one."""
    return session.exec(
        select(WorkItemEvent.at)
        .where(
            col(WorkItemEvent.work_item_id) == item_id,
            col(WorkItemEvent.action).in_(LEASE_STARTS),
            col(WorkItemEvent.to_status) == Status.in_progress,
        )
        .order_by(col(WorkItemEvent.id).desc())
        .limit(1)
    ).first()


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
        item.lease_expires_at = now + lease_ttl()
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
    record_event(
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
    me = user_id_of(actor)
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
    me = user_id_of(actor)
    item = session.get(WorkItem, work_item_id)
    if item is not None and in_my_list(item, me):
        return item
    if item is not None and _was_holder(session, item_id=work_item_id, user_id=me):
        where = _SUBMITTED.get(item.status) if item.coded_by_id == me else None
        if where is not None:  # an old link to a chart the caller finished: nothing was lost
            raise Conflict(
                f"You submitted chart #{work_item_id}; it is {where} now and no longer in "
                "your list.",
                code="submitted",
            )
        raise LeaseExpired("This item is no longer leased to you.")
    raise _not_yours(session, actor=actor, work_item_id=work_item_id)


# Where a submitted chart is, in words, for the coder who submitted it.
_SUBMITTED: dict[str, str] = {
    Status.qa_review: "in QA review",
    Status.ready_for_billing: "ready for billing",
    Status.billed: "billed",
}


def in_my_list(item: WorkItem, me: int) -> bool:
    if item.status in (Status.in_progress, Status.on_hold):
        return item.lease_owner_id == me
    if item.status == Status.returned:
        return item.lease_owner_id == me or (item.lease_owner_id is None and item.coded_by_id == me)
    return False


@dataclass
class ItemRow:
    """A work item as lists show it: no patient data, names instead of ids."""

    item: WorkItem
    queue: str
    owner: str | None


def with_names(stmt: Any) -> Any:
    """A select of work items, with each item's queue name and holder's username added."""
    owner = User.__table__.alias("owner")  # type: ignore[attr-defined]
    stmt = stmt.join(Queue, col(Queue.id) == col(WorkItem.queue_id)).outerjoin(
        owner, owner.c.id == col(WorkItem.lease_owner_id)
    )
    return stmt.add_columns(col(Queue.name), owner.c.username)


def item_rows(session: Session, stmt: Any, params: dict[str, Any] | None = None) -> list[ItemRow]:
    """ItemRows from a `with_names` select."""
    return [ItemRow(item=i, queue=q, owner=o) for i, q, o in session.execute(stmt, params)]


_ITEM_ROW = with_names(select(WorkItem).where(col(WorkItem.id) == bindparam("item_id")))


def item_row(session: Session, *, item: WorkItem) -> ItemRow:
    """One item with its queue and holder names."""
    return item_rows(session, _ITEM_ROW, {"item_id": item.id})[0]


def expire_now(session: Session, *, work_item_id: int) -> None:
    """Tests and operators: make a lease end now (the next sweep returns the item)."""
    session.execute(
        update(WorkItem)
        .where(col(WorkItem.id) == work_item_id)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
