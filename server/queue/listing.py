"""Lists of work items: the supervisor's filtered list (keyset pages) and a coder's own."""

from __future__ import annotations

import base64

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from server.auth import service as auth_service
from server.auth.principal import Principal
from server.errors import ValidationFailed
from server.models import Encounter, Status, WorkItem
from server.queue.items import ItemRow, item_rows, user_id_of, with_names
from server.queue.queues import get_queue


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
    rows = item_rows(session, with_names(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1].item.id
        assert last is not None  # noqa: S101
        next_cursor = _encode_cursor(last)
    return rows, next_cursor


def my_items(session: Session, *, actor: Principal) -> list[ItemRow]:
    """The caller's items: returned by billing first, then leased, then held."""
    me = user_id_of(actor)
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
    return item_rows(session, with_names(stmt))


def encounters_of(session: Session, *, rows: list[ItemRow]) -> dict[int, Encounter]:
    """The encounters of listed items by work item id, in one query (no patient data)."""
    by_encounter = {row.item.encounter_id: row.item.id for row in rows if row.item.id}
    if not by_encounter:
        return {}
    found = session.exec(select(Encounter).where(col(Encounter.id).in_(list(by_encounter))))
    out: dict[int, Encounter] = {}
    for encounter in found:
        item_id = by_encounter.get(encounter.id or 0)
        if item_id is not None:
            out[item_id] = encounter
    return out
