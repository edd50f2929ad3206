"""The per-day summaries behind the dashboard figures (issue 20 Speed, migration 0027).

- `coding_day`: submits per local day, coder, encounter class and final DRG, with the
  seconds of the leases they ended. Written by `add_submit` in the submit's own transaction
  (called by `record_event` for every `submit` event), so productivity and throughput read
  whole days from it and only a window's partial first and last day from the raw submits.
- `work_item.discharged_at`, `encounter_class`, `payer_class`: the encounter's discharge
  moment (end of service, else start) and classes beside the item's status, kept by the
  mapper events below whenever an item is written or its encounter's dates or classes
  change, so DNFB counts from one index without joining encounters.

Days are calendar days in the hospital's zone (`CHARTDESK_AUDIT_TIMEZONE`); after changing
the zone, rebuild the summary (`rebuild_coding_days`, as the migration does).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, delete, event, func, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from server.models import CodingDay, Encounter, WorkItem, WorkItemEvent

_DAY = CodingDay.__table__  # type: ignore[attr-defined]
_ITEM = WorkItem.__table__  # type: ignore[attr-defined]
_ENC = Encounter.__table__  # type: ignore[attr-defined]
_EV = WorkItemEvent.__table__  # type: ignore[attr-defined]


def local_day(moment: datetime) -> date:
    """The calendar day of `moment` in the hospital's zone."""
    from server.reports.service import hospital_zone

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(hospital_zone()).date()


def _upsert(connection: Any, row: dict[str, Any]) -> None:
    """Add one row's charts and seconds to its (day, coder, class, DRG) line."""
    insert = sqlite_insert if connection.dialect.name == "sqlite" else pg_insert
    stmt = insert(_DAY).values(**row)
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["day", "coder_id", "encounter_class", "drg", "drg_version"],
            set_={
                "charts": _DAY.c.charts + stmt.excluded.charts,
                "lease_seconds": _DAY.c.lease_seconds + stmt.excluded.lease_seconds,
            },
        )
    )


def add_submit(
    session: Session,
    *,
    item_id: int,
    coder_id: int | None,
    at: datetime,
    started: datetime | None,
) -> None:
    """Count one submit in `coding_day` (same transaction as its event): its coder, the
    item's encounter class and final DRG as just set, and the lease it ended (none: 0 s)."""
    if coder_id is None:  # a submit is always a person's; nothing to count otherwise
        return
    row = session.execute(
        select(_ENC.c.encounter_class, _ITEM.c.final_drg, _ITEM.c.final_drg_version)
        .select_from(_ITEM.join(_ENC, _ENC.c.id == _ITEM.c.encounter_id))
        .where(_ITEM.c.id == item_id)
    ).one()
    seconds = 0.0
    if started is not None:
        seconds = (_utc(at) - _utc(started)).total_seconds()
    _upsert(
        session.connection(),
        {
            "day": local_day(at),
            "coder_id": coder_id,
            "encounter_class": row[0],
            "drg": row[1] or "",
            "drg_version": row[2] or "",
            "charts": 1,
            "lease_seconds": seconds,
        },
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rebuild_coding_days(connection: Any) -> int:
    """Build `coding_day` again from every stored submit (the migration's backfill; after a
    change of the hospital's zone). Returns the number of summary rows."""
    from server.reports.service import hospital_zone

    connection.execute(delete(_DAY))
    # A submit stored without its lease start (before migration 0023's backfill) has it
    # looked up, as the report did: the last event of the item into progress before it.
    start = _EV.alias("lease_start")
    lookup = (
        select(start.c.at)
        .where(
            start.c.work_item_id == _EV.c.work_item_id,
            start.c.id < _EV.c.id,
            start.c.action.in_(("claim", "assign", "reassign", "resume")),
            start.c.to_status == "in_progress",
        )
        .order_by(start.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    started = func.coalesce(_EV.c.lease_started_at, lookup)
    submits = _EV.join(_ITEM, _ITEM.c.id == _EV.c.work_item_id).join(
        _ENC, _ENC.c.id == _ITEM.c.encounter_id
    )
    where = (_EV.c.action == "submit", _EV.c.actor_id.is_not(None))
    if connection.dialect.name == "postgresql":
        day = func.cast(func.timezone(hospital_zone().key, _EV.c.at), Date)
        seconds = func.coalesce(func.sum(func.extract("epoch", _EV.c.at - started)), 0.0)
        drg, version = (
            func.coalesce(_ITEM.c.final_drg, ""),
            func.coalesce(_ITEM.c.final_drg_version, ""),
        )
        grouped = (
            select(day, _EV.c.actor_id, _ENC.c.encounter_class, drg, version, func.count(), seconds)
            .select_from(submits)
            .where(*where)
            .group_by(day, _EV.c.actor_id, _ENC.c.encounter_class, drg, version)
        )
        connection.execute(
            _DAY.insert().from_select(
                [
                    "day",
                    "coder_id",
                    "encounter_class",
                    "drg",
                    "drg_version",
                    "charts",
                    "lease_seconds",
                ],
                grouped,
            )
        )
    else:
        rows = connection.execute(
            select(
                _EV.c.at,
                started.label("started"),
                _EV.c.actor_id,
                _ENC.c.encounter_class,
                _ITEM.c.final_drg,
                _ITEM.c.final_drg_version,
            )
            .select_from(submits)
            .where(*where)
        ).all()
        for at, begun, coder, klass, drg, version in rows:
            if isinstance(begun, str):  # a scalar subquery's time comes back raw on SQLite
                begun = datetime.fromisoformat(begun)
            spent = (_utc(at) - _utc(begun)).total_seconds() if begun else 0.0
            _upsert(
                connection,
                {
                    "day": local_day(at),
                    "coder_id": coder,
                    "encounter_class": klass,
                    "drg": drg or "",
                    "drg_version": version or "",
                    "charts": 1,
                    "lease_seconds": spent,
                },
            )
    return int(connection.execute(select(func.count()).select_from(_DAY)).scalar() or 0)


# ------------------------------------------------- the discharge moment beside the status

_DISCHARGE = func.coalesce(_ENC.c.end_at, _ENC.c.start_at)


@event.listens_for(WorkItem, "before_insert")
def _item_discharge(mapper: Any, connection: Any, item: WorkItem) -> None:
    """A new item carries its encounter's discharge moment and classes."""
    if item.encounter_id is None:
        return
    row = connection.execute(
        select(_DISCHARGE, _ENC.c.encounter_class, _ENC.c.payer_class).where(
            _ENC.c.id == item.encounter_id
        )
    ).first()
    if row is not None:
        item.discharged_at, item.encounter_class, item.payer_class = row


_KEPT = ("end_at", "start_at", "encounter_class", "payer_class")


@event.listens_for(Encounter, "after_update")
def _encounter_dates(mapper: Any, connection: Any, encounter: Encounter) -> None:
    """An encounter's dates or classes changed (an HL7 update, a discharge undone): its
    item follows."""
    state = inspect(encounter)
    if not any(getattr(state.attrs, name).history.has_changes() for name in _KEPT):
        return
    connection.execute(
        update(_ITEM)
        .where(_ITEM.c.encounter_id == encounter.id)
        .values(
            discharged_at=encounter.end_at or encounter.start_at,
            encounter_class=encounter.encounter_class,
            payer_class=encounter.payer_class,
        )
    )
