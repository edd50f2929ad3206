"""Work in hand: holds by reason and age, overdue items, and throughput per day.

Clear metadata only (statuses, reasons from the configured list, due dates, event times,
encounter classes). Days are whole calendar days in the hospital's zone, as for DNFB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from server.models import CodingDay, Queue, Status, WorkItem, WorkItemEvent
from server.models.base import utcnow
from server.reports.service import day_start, hospital_zone

# Days on hold: (label, most days in the bucket); the last is open-ended.
HOLD_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("0-1", 1),
    ("2-3", 3),
    ("4-7", 7),
    ("8+", None),
)
HOLD_LABELS = tuple(label for label, _ in HOLD_BUCKETS)
OPEN = (Status.ready, Status.in_progress, Status.on_hold, Status.returned)
THROUGHPUT_DAYS = 30


def _bucket_case(moment: Any, today: date, buckets: tuple[tuple[str, int | None], ...]) -> Any:
    """SQL: the label of the bucket of `moment`'s age in whole local days."""
    whens = [
        (moment >= day_start(today - timedelta(days=most)), label)
        for label, most in buckets
        if most is not None
    ]
    return case(*whens, else_=buckets[-1][0])


@dataclass
class HoldRow:
    """One hold reason: items on hold per bucket of days on hold."""

    reason: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HOLD_LABELS, 0))

    @property
    def total(self) -> int:
        """Items on hold for this reason."""
        return sum(self.counts.values())


@dataclass
class OverdueRow:
    """One queue: open items past their due date, and the most days overdue."""

    queue: str
    count: int
    oldest_days: int


@dataclass
class WorkReport:
    """Holds by reason and age, and overdue items by queue, as of a moment."""

    as_of: datetime
    holds: list[HoldRow]
    overdue: list[OverdueRow]

    @property
    def held(self) -> int:
        """Items on hold in all."""
        return sum(r.total for r in self.holds)


def work_in_hand(session: Session, *, as_of: datetime | None = None) -> WorkReport:
    """Items on hold by reason and days on hold (since their last `hold` event), and open
    items past their due date by queue."""
    as_of = (as_of or utcnow()).astimezone(UTC)
    zone = hospital_zone()
    today = as_of.astimezone(zone).date()
    held_since = (
        select(func.max(WorkItemEvent.at))
        .where(
            col(WorkItemEvent.work_item_id) == col(WorkItem.id),
            col(WorkItemEvent.action) == "hold",
        )
        .scalar_subquery()
    )
    # An item put on hold without a hold event (never, by the services) ages from its update.
    since = func.coalesce(held_since, col(WorkItem.updated_at))
    bucket = _bucket_case(since, today, HOLD_BUCKETS)
    rows: dict[str, HoldRow] = {}
    for reason, label, count in session.execute(
        select(col(WorkItem.hold_reason), bucket, func.count())
        .where(col(WorkItem.status) == Status.on_hold)
        .group_by(col(WorkItem.hold_reason), bucket)
    ).all():
        name = reason or "(none)"
        rows.setdefault(name, HoldRow(reason=name)).counts[label] += count
    overdue = []
    for queue, count, oldest in session.execute(
        select(col(Queue.name), func.count(), func.min(col(WorkItem.due_at)))
        .join(Queue, col(Queue.id) == col(WorkItem.queue_id))
        .where(col(WorkItem.status).in_(OPEN), col(WorkItem.due_at) < as_of)
        .group_by(col(Queue.name))
        .order_by(col(Queue.name))
    ).all():
        due = _as_utc(oldest)
        overdue.append(
            OverdueRow(
                queue=queue, count=count, oldest_days=(today - due.astimezone(zone).date()).days
            )
        )
    return WorkReport(as_of=as_of, holds=[rows[k] for k in sorted(rows)], overdue=overdue)


@dataclass
class DayRow:
    """Charts submitted on one day (hospital zone), in all and per encounter class."""

    day: date
    by_class: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Charts submitted that day."""
        return sum(self.by_class.values())


@dataclass
class ThroughputReport:
    """Charts coded per day over the last `days` days up to today, per class."""

    as_of: datetime
    days: list[DayRow]
    classes: list[str]


def throughput(
    session: Session, *, as_of: datetime | None = None, days: int = THROUGHPUT_DAYS
) -> ThroughputReport:
    """Submits per local day over the last `days` days (today included), per encounter class.

    Read from `coding_day` (kept on submit per local day, coder, class and DRG): a few
    hundred summary rows, not the window's submits.
    """
    as_of = (as_of or utcnow()).astimezone(UTC)
    today = as_of.astimezone(hospital_zone()).date()
    first = today - timedelta(days=days - 1)
    rows = {first + timedelta(days=n): DayRow(day=first + timedelta(days=n)) for n in range(days)}
    classes: set[str] = set()
    for day, klass, count in session.execute(
        select(col(CodingDay.day), col(CodingDay.encounter_class), func.sum(col(CodingDay.charts)))
        .where(col(CodingDay.day) >= first, col(CodingDay.day) <= today)
        .group_by(col(CodingDay.day), col(CodingDay.encounter_class))
    ).all():
        if day not in rows:
            continue
        rows[day].by_class[klass] = int(count)
        classes.add(klass)
    return ThroughputReport(as_of=as_of, days=list(rows.values()), classes=sorted(classes))


def _as_utc(value: Any) -> datetime:
    """min() over a UTC column comes back raw on SQLite (a string or a naive time)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)  # noqa: S101
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
