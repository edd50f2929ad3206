"""Queue administration (the claim/lease logic lives here too as it grows)."""

from __future__ import annotations

import re

from sqlmodel import Session, select

from server.errors import AppError, Conflict, NotFound
from server.models import Queue, QueueMember, User

QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def get_queue(session: Session, *, name: str) -> Queue:
    """A queue by name, or NotFound."""
    queue = session.exec(select(Queue).where(Queue.name == name)).first()
    if queue is None:
        raise NotFound(f"No queue named {name}.")
    return queue


def create_queue(session: Session, *, name: str, description: str = "") -> Queue:
    """Create an empty queue."""
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
    return queue


def add_member(session: Session, *, queue_name: str, username: str) -> None:
    """Let a user pull work from a queue (idempotent)."""
    queue = get_queue(session, name=queue_name)
    user = session.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise NotFound(f"No user named {username}.")
    assert queue.id is not None
    assert user.id is not None
    if session.get(QueueMember, (queue.id, user.id)) is None:
        session.add(QueueMember(queue_id=queue.id, user_id=user.id))
        session.flush()
