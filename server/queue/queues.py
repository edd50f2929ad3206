"""Queues and their members (who may pull work from which queue)."""

from __future__ import annotations

import re

from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth import service as auth_service
from server.auth.principal import Principal
from server.errors import AppError, Conflict, NotFound, ValidationFailed
from server.models import Queue, QueueMember, User, UserRole

QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


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


def is_member(session: Session, *, queue_id: int, user_id: int) -> bool:
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


def queues_of(session: Session, *, user_id: int) -> list[str]:
    """Names of the queues a user may pull work from, sorted."""
    rows = session.exec(
        select(Queue.name)
        .join(QueueMember, col(QueueMember.queue_id) == col(Queue.id))
        .where(QueueMember.user_id == user_id)
        .order_by(col(Queue.name))
    ).all()
    return list(rows)
