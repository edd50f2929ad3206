"""Lists of work items: the supervisor's lists (keyset pages for the API, sorted numbered
pages with a total for the dashboard) and a coder's own."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_
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


# ---------------------------------------------------------------- the dashboard's list

PAGE_SIZE = 50
# sort key -> what it orders by; "age" is time since discharge (oldest discharge first when
# descending), "due" puts items without a due date last either way.
SORTS = ("due", "priority", "age", "status", "id")
DIRECTIONS = ("asc", "desc")


def discharged_at_column() -> Any:
    """An encounter's discharge moment: end of service, else its start (None if neither)."""
    return func.coalesce(col(Encounter.end_at), col(Encounter.start_at))


@dataclass
class ItemFilter:
    """What the dashboard's list is filtered by (empty: any)."""

    queue: str = ""
    status: str = ""
    coder: str = ""
    encounter_class: str = ""
    payer_class: str = ""
    sort: str = "due"
    direction: str = "asc"
    page: int = 1

    def query(self, **changes: Any) -> dict[str, str]:
        """The non-empty fields as URL query parameters, with `changes` applied."""
        values = {
            "queue": self.queue,
            "status": self.status,
            "coder": self.coder,
            "class": self.encounter_class,
            "payer_class": self.payer_class,
            "sort": self.sort,
            "dir": self.direction,
            "page": str(self.page),
        }
        values.update({k: str(v) for k, v in changes.items()})
        if values.get("page") == "1":
            del values["page"]
        return {k: v for k, v in values.items() if v}


@dataclass
class ListedItem:
    """A dashboard row: the item, its queue and holder, and its encounter's clear metadata."""

    item: WorkItem
    queue: str
    owner: str | None
    encounter_class: str
    payer_class: str | None
    discharged_at: datetime | None


@dataclass
class ItemPage:
    """One numbered page of the dashboard's list, with the total matching the filter."""

    rows: list[ListedItem]
    total: int
    page: int
    pages: int
    filters: ItemFilter = field(default_factory=ItemFilter)


def _check_filter(flt: ItemFilter) -> None:
    problems = []
    if flt.status and flt.status not in {s.value for s in Status}:
        problems.append({"loc": ["status"], "msg": "not a status"})
    if flt.sort not in SORTS:
        problems.append({"loc": ["sort"], "msg": f"one of: {', '.join(SORTS)}"})
    if flt.direction not in DIRECTIONS:
        problems.append({"loc": ["dir"], "msg": "asc or desc"})
    if flt.page < 1:
        problems.append({"loc": ["page"], "msg": "from 1"})
    if problems:
        raise ValidationFailed("Check the list's filters.", details=problems)


def _order(flt: ItemFilter, discharged: Any) -> list[Any]:
    desc = flt.direction == "desc"
    item_id = col(WorkItem.id)
    if flt.sort == "due":  # NULLS LAST either way: items without a due date come last
        due = col(WorkItem.due_at)
        return [(due.desc() if desc else due.asc()).nulls_last(), item_id]
    if flt.sort == "priority":
        prio = col(WorkItem.priority)
        return [prio.desc() if desc else prio.asc(), item_id]
    if flt.sort == "age":  # older discharge = greater age: "desc" lists the oldest first
        return [(discharged.asc() if desc else discharged.desc()).nulls_last(), item_id]
    if flt.sort == "status":
        status = col(WorkItem.status)
        return [status.desc() if desc else status.asc(), item_id]
    return [item_id.desc() if desc else item_id.asc()]


def supervised_items(session: Session, *, flt: ItemFilter, per_page: int = PAGE_SIZE) -> ItemPage:
    """The dashboard's list: filtered by every column, sorted, in numbered pages with a total.

    Filters: queue, status, holder, encounter class, payer class. Sorts: due date (items
    without one last), priority, age since discharge, status, id; ties by id. The count and
    the page's ids touch `encounter` only when a filter or the sort needs it; the page's 50
    rows then get their names and encounter metadata by id.
    """
    _check_filter(flt)
    discharged = discharged_at_column()
    conditions: list[Any] = []
    if flt.queue:
        conditions.append(col(WorkItem.queue_id) == get_queue(session, name=flt.queue).id)
    if flt.status:
        conditions.append(col(WorkItem.status) == flt.status)
    if flt.coder:
        user = auth_service.find_user(session, username=flt.coder)
        conditions.append(col(WorkItem.lease_owner_id) == (user.id if user else -1))
    filters_encounter = bool(flt.encounter_class or flt.payer_class)
    if flt.encounter_class:
        conditions.append(col(Encounter.encounter_class) == flt.encounter_class)
    if flt.payer_class:
        conditions.append(col(Encounter.payer_class) == flt.payer_class)
    on_encounter = col(Encounter.id) == col(WorkItem.encounter_id)
    count = select(func.count()).select_from(WorkItem)
    if filters_encounter:
        count = count.join(Encounter, on_encounter)
    total = int(session.execute(count.where(*conditions)).scalar_one())
    pages = max(1, math.ceil(total / per_page))
    page = min(flt.page, pages)
    ids_stmt = select(col(WorkItem.id))
    if filters_encounter or flt.sort == "age":
        ids_stmt = ids_stmt.join(Encounter, on_encounter)
    ids_stmt = (
        ids_stmt.where(*conditions)
        .order_by(*_order(flt, discharged))
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    ids = list(session.execute(ids_stmt).scalars())
    stmt = with_names(select(WorkItem).join(Encounter, on_encounter)).add_columns(
        col(Encounter.encounter_class), col(Encounter.payer_class), discharged
    )
    found = {
        item.id: ListedItem(
            item=item,
            queue=queue,
            owner=owner,
            encounter_class=klass,
            payer_class=payer,
            discharged_at=_aware(when),
        )
        for item, queue, owner, klass, payer, when in session.execute(
            stmt.where(col(WorkItem.id).in_(ids))
        ).all()
    }
    flt.page = page
    rows = [found[i] for i in ids if i in found]
    return ItemPage(rows=rows, total=total, page=page, pages=pages, filters=flt)


# The classes ingest produces (README "Encounters"); the filters offer these.
ENCOUNTER_CLASSES = ("emergency", "inpatient", "outpatient", "professional")
PAYER_CLASSES = ("commercial", "medicaid", "medicare", "self-pay", "tricare")


def filter_choices(session: Session) -> dict[str, list[str]]:
    """The values each filter offers: the encounter and payer classes ingest produces.

    Constants, not a DISTINCT over every encounter on each dashboard load.
    """
    del session  # kept for callers: the choices may come from the database one day
    return {"classes": list(ENCOUNTER_CLASSES), "payers": list(PAYER_CLASSES)}


def _aware(value: Any) -> datetime | None:
    """A coalesce() of UTC columns comes back raw on SQLite (a string or a naive time)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)  # noqa: S101
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
