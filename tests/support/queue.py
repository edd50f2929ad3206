"""Helpers for the queue tests.

`make_items` inserts encounters and work items directly, with dummy sealed bytes: enough for
claim, lease and assignment logic. Tests that open a chart use
`tests.support.factories.make_encounter`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from server.auth.principal import Principal
from server.db import get_engine
from server.models import DataKey, Encounter, Patient, Queue, User, WorkItem, WorkItemEvent
from server.queue import service as queue_service


def ensure_queue(name: str) -> int:
    """The id of queue `name`, created if needed."""
    with Session(get_engine(), expire_on_commit=False) as s:
        queue = s.exec(select(Queue).where(Queue.name == name)).first()
        if queue is None:
            queue = queue_service.create_queue(s, name=name)
            s.commit()
        assert queue.id is not None
        return queue.id


def dummy_item(
    s: Session, *, queue_id: int, encounter: dict[str, Any] | None = None, **fields: Any
) -> WorkItem:
    """A work item (flushed, with its id) on a new patient's encounter with dummy ciphertext:
    `encounter` sets the encounter's columns (class outpatient by default), `fields` the
    item's."""
    tag = uuid.uuid4().hex
    key = DataKey(kek_id="test", wrapped=b"not-a-real-key")
    patient = Patient(source_system="test", mrn_index=tag)
    s.add_all([key, patient])
    s.flush()
    assert key.id is not None
    assert patient.id is not None
    enc = Encounter(
        source_system="test",
        external_id=tag,
        patient_id=patient.id,
        data_key_id=key.id,
        sealed_patient=b"sealed",
        **{"encounter_class": "outpatient", **(encounter or {})},
    )
    s.add(enc)
    s.flush()
    assert enc.id is not None
    item = WorkItem(encounter_id=enc.id, queue_id=queue_id, **fields)
    s.add(item)
    s.flush()
    assert item.id is not None
    return item


def make_items(
    n: int = 1,
    *,
    queue: str = "default",
    priority: int = 0,
    due_at: datetime | None = None,
) -> list[int]:
    """Insert `n` ready work items (dummy ciphertext) into `queue`; returns their ids."""
    queue_id = ensure_queue(queue)
    with Session(get_engine(), expire_on_commit=False) as s:
        items = []
        for _ in range(n):
            item = dummy_item(s, queue_id=queue_id, priority=priority, due_at=due_at)
            items.append(item)
        s.flush()
        ids = [i.id for i in items]
        s.commit()
    return [i for i in ids if i is not None]


def item(item_id: int) -> WorkItem:
    """A fresh copy of a work item."""
    with Session(get_engine(), expire_on_commit=False) as s:
        found = s.get(WorkItem, item_id)
        assert found is not None
        return found


def events(item_id: int) -> list[WorkItemEvent]:
    """The item's events, oldest first."""
    with Session(get_engine(), expire_on_commit=False) as s:
        return list(
            s.exec(
                select(WorkItemEvent)
                .where(WorkItemEvent.work_item_id == item_id)
                .order_by(WorkItemEvent.id)  # type: ignore[arg-type]
            ).all()
        )


def principal_of(username: str) -> Principal:
    """A Principal for a user, for calling services directly."""
    with Session(get_engine(), expire_on_commit=False) as s:
        user = s.exec(select(User).where(User.username == username)).one()
        return Principal(
            name=user.username, kind="user", roles=frozenset({"coder"}), user_id=user.id
        )


def expire(item_id: int) -> None:
    """Make an item's lease end now."""
    with Session(get_engine()) as s:
        queue_service.expire_now(s, work_item_id=item_id)
        s.commit()
