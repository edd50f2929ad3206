"""One work item as the supervisor sees it: its encounter's clear metadata and every event.

No patient data: the encounter's class, facility, service type, payer class and dates of
service are stored in clear for routing and aging; the events carry who, when, from, to,
the action and a reason code. Nothing here opens a record, so nothing here is audited as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from server.errors import NotFound
from server.models import Encounter, Queue, User, WorkItem, WorkItemEvent


@dataclass
class EventRow:
    """One event of an item's history, with names instead of user ids."""

    at: datetime
    action: str
    actor: str | None
    from_status: str | None
    to_status: str | None
    owner: str | None
    reason: str | None


@dataclass
class ItemHistory:
    """An item, its queue, holder and encounter metadata, and its events oldest first."""

    item: WorkItem
    queue: str
    owner: str | None
    coded_by: str | None
    encounter: Encounter
    events: list[EventRow]


def item_history(session: Session, *, work_item_id: int) -> ItemHistory:
    """The item's whole history (every lease, release, hold, assignment, QA and billing step)."""
    item = session.get(WorkItem, work_item_id)
    if item is None:
        raise NotFound("No such work item.")
    encounter = session.get(Encounter, item.encounter_id)
    queue = session.get(Queue, item.queue_id)
    assert encounter is not None  # noqa: S101
    assert queue is not None  # noqa: S101
    actor = User.__table__.alias("actor")  # type: ignore[attr-defined]
    owner = User.__table__.alias("owner")  # type: ignore[attr-defined]
    stmt = (
        core_select(
            col(WorkItemEvent.at),
            col(WorkItemEvent.action),
            actor.c.username,
            col(WorkItemEvent.from_status),
            col(WorkItemEvent.to_status),
            owner.c.username,
            col(WorkItemEvent.reason),
        )
        .outerjoin(actor, actor.c.id == col(WorkItemEvent.actor_id))
        .outerjoin(owner, owner.c.id == col(WorkItemEvent.owner_id))
        .where(col(WorkItemEvent.work_item_id) == work_item_id)
        .order_by(col(WorkItemEvent.at), col(WorkItemEvent.id))
    )
    events = [EventRow(*row) for row in session.execute(stmt).all()]
    names = {
        user.id: user.username
        for user in session.exec(
            select(User).where(
                col(User.id).in_([i for i in (item.lease_owner_id, item.coded_by_id) if i])
            )
        ).all()
    }
    return ItemHistory(
        item=item,
        queue=queue.name,
        owner=names.get(item.lease_owner_id),
        coded_by=names.get(item.coded_by_id),
        encounter=encounter,
        events=events,
    )
