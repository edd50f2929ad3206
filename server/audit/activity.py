"""Activity over time for the compliance home: record views, refusals and break-glass
accesses per day (issue 20). Counts from the audit log only: no patient, no event shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from server.audit.service import Action, Outcome
from server.models import AuditEvent
from server.models.base import utcnow
from server.reports.service import day_start, hospital_zone

KINDS = {
    "views": "Record views",
    "refusals": "Refusals (denied)",
    "break_glass": "Break-glass accesses",
}
DAYS = 30


@dataclass
class Day:
    """One day's counts per kind."""

    day: date
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))


@dataclass
class Activity:
    """The last `DAYS` days, oldest first, in the hospital's zone."""

    days: list[Day]

    def total(self, kind: str) -> int:
        """All the days' count of one kind."""
        return sum(d.counts[kind] for d in self.days)


def activity(session: Session, *, now: datetime | None = None, days: int = DAYS) -> Activity:
    """Per day: successful record views, refused attempts (any action), and break-glass
    accesses (`emergency-access`, allowed or not). One grouped query over the window's
    events, bucketed by local day in SQL."""
    today = (now or utcnow()).astimezone(hospital_zone()).date()
    first = today - timedelta(days=days - 1)
    starts = [first + timedelta(days=i) for i in range(days)]
    whens = [(col(AuditEvent.time) >= day_start(d), d.isoformat()) for d in reversed(starts)]
    day_key: Any = case(*whens, else_=first.isoformat())
    kind: Any = case(
        (col(AuditEvent.action) == Action.emergency_access.value, "break_glass"),
        (col(AuditEvent.outcome) == Outcome.denied.value, "refusals"),
        (col(AuditEvent.action) == Action.view_record.value, "views"),
        else_=None,
    )
    stmt = (
        select(day_key, kind, func.count())
        .where(
            col(AuditEvent.time) >= day_start(first),
            col(AuditEvent.time) < day_start(today + timedelta(days=1)),
            (col(AuditEvent.action).in_([Action.emergency_access.value, Action.view_record.value]))
            | (col(AuditEvent.outcome) == Outcome.denied.value),
        )
        .group_by(day_key, kind)
    )
    by_day = {d.isoformat(): Day(day=d) for d in starts}
    for key, what, n in session.execute(stmt).all():
        if what in KINDS and key in by_day:
            by_day[key].counts[what] += int(n)
    return Activity(days=[by_day[d.isoformat()] for d in starts])
