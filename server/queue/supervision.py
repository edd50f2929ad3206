"""The supervisor's side: assign, move, priority, and the queues' figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth import service as auth_service
from server.auth.principal import Principal
from server.errors import Conflict, NotFound, ValidationFailed
from server.models import Encounter, Queue, QueueMember, Status, User, WorkItem, WorkItemEvent
from server.models.base import utcnow
from server.queue.items import OPEN_STATUSES, lock_item, record_event, transition
from server.queue.queues import get_queue, is_member, list_queues


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
    if not is_member(session, queue_id=item.queue_id, user_id=user.id):
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
    record_event(
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
    """Per queue: ready, in progress, on hold, oldest ready age since discharge, coded today."""
    now = utcnow()
    counts: dict[tuple[int, str], int] = {}
    for queue_id, status, n in session.exec(
        select(WorkItem.queue_id, WorkItem.status, func.count())
        .where(col(WorkItem.status).in_([Status.ready, Status.in_progress, Status.on_hold]))
        .group_by(col(WorkItem.queue_id), col(WorkItem.status))
    ).all():
        counts[(queue_id, status)] = n
    oldest: dict[int, datetime] = {}
    # Aged from discharge (end of service, else its start; arrival only if neither is known):
    # a chart discharged six weeks ago is six weeks old, however recently it arrived.
    discharged = func.coalesce(
        col(Encounter.end_at), col(Encounter.start_at), col(WorkItem.created_at)
    )
    for queue_id, created in session.exec(
        select(WorkItem.queue_id, func.min(discharged))
        .join(Encounter, col(Encounter.id) == col(WorkItem.encounter_id))
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
                oldest_ready_age_seconds=max(0, int((now - age).total_seconds())) if age else None,
                done_today=done.get(queue.id, 0),
                members=by_queue.get(queue.id, []),
            )
        )
    return result


def stats_version(session: Session, *, now: datetime | None = None) -> str:
    """A cheap token that changes whenever the dashboard's figures may have: the newest work
    item event (every claim, submit, hold, move, expiry... writes one), the newest work item,
    how many queues and memberships there are, and the minute (ages are shown to the minute,
    and it bounds how stale anything else, such as a discharge date corrected, can be).

    Four index look-ups, not a recount: the dashboard polls every 10 seconds and gets "no
    change" (204) while the token it holds is still current.
    """
    now = now or utcnow()
    row = session.execute(
        select(
            select(func.max(WorkItemEvent.id)).scalar_subquery(),
            select(func.max(WorkItem.id)).scalar_subquery(),
            select(func.count()).select_from(Queue).scalar_subquery(),
            select(func.count()).select_from(QueueMember).scalar_subquery(),
        )
    ).one()
    return f"{now.astimezone(UTC):%Y%m%d%H%M}." + ".".join(str(n or 0) for n in row)


def _aware(value: Any) -> datetime:
    """min() over a UTCDateTime column comes back raw (a string or naive time on SQLite)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)  # noqa: S101
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


BULK_ACTIONS = ("assign", "move", "priority")
MAX_BULK = 500


def bulk_change(
    session: Session,
    *,
    actor: Principal,
    work_item_ids: list[int],
    action: str,
    username: str = "",
    queue: str = "",
    priority: int | None = None,
) -> int:
    """Assign, move or reprioritise several items at once: all of them or none.

    Each item goes through the same service as one at a time (its own event and audit
    event); the first that cannot be changed raises, and the request's transaction rolls
    every change back. Returns how many items were changed.
    """
    ids = sorted(set(work_item_ids))  # one lock order for every caller
    problems = []
    if not ids:
        problems.append({"loc": ["ids"], "msg": "Select at least one item."})
    if len(ids) > MAX_BULK:
        problems.append({"loc": ["ids"], "msg": f"Select at most {MAX_BULK} items at once."})
    if action not in BULK_ACTIONS:
        problems.append(
            {"loc": ["action"], "msg": f"The action is one of: {', '.join(BULK_ACTIONS)}."}
        )
    elif action == "assign" and not username:
        problems.append({"loc": ["username"], "msg": "Pick a coder."})
    elif action == "move" and not queue:
        problems.append({"loc": ["queue"], "msg": "Pick a queue."})
    elif action == "priority" and (priority is None or not -1000 <= priority <= 1000):
        problems.append(
            {"loc": ["priority"], "msg": "The priority is a whole number from -1000 to 1000."}
        )
    if problems:
        raise ValidationFailed("Nothing was changed.", details=problems)
    for item_id in ids:
        try:
            if action == "assign":
                assign(session, actor=actor, work_item_id=item_id, username=username)
            elif action == "move":
                move(session, actor=actor, work_item_id=item_id, queue=queue)
            else:
                assert priority is not None  # noqa: S101
                set_priority(session, actor=actor, work_item_id=item_id, priority=priority)
        except (Conflict, NotFound, ValidationFailed) as exc:
            raise type(exc)(
                f"Item {item_id}: {exc.message} Nothing was changed.", details=exc.details
            ) from exc
    return len(ids)
