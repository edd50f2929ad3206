"""Activity over time for the compliance home: record views, refusals and break-glass
accesses per day (issue 20). Counts from the audit log only: no patient, no event shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from server.audit.service import Action, Outcome
from server.models import AuditDay, AuditEvent
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


# A day is rolled up once it ended at least this long ago: an event is stamped with its
# transaction's start by the database, so a day can still gain events from a transaction
# that began in it and commits later. Until then, and for any day never rolled up, the
# figure counts the audit log itself, so every event is always counted.
SETTLE = timedelta(days=1)
ROLL_UP_DAYS = 400  # how far back a roll-up round looks for days not rolled up yet


def _kind() -> Any:
    return case(
        (col(AuditEvent.action) == Action.emergency_access.value, "break_glass"),
        (col(AuditEvent.outcome) == Outcome.denied.value, "refusals"),
        (col(AuditEvent.action) == Action.view_record.value, "views"),
        else_=None,
    )


def _counted() -> Any:
    """The events the figure counts; the same predicate as ix_audit_event_activity's."""
    return col(AuditEvent.action).in_([Action.emergency_access.value, Action.view_record.value]) | (
        col(AuditEvent.outcome) == Outcome.denied.value
    )


def _raw(session: Session, days: list[date]) -> dict[date, dict[str, int]]:
    """Counts per kind of each of `days` (consecutive), from the audit log."""
    out: dict[date, dict[str, int]] = {d: dict.fromkeys(KINDS, 0) for d in days}
    if not days:
        return out
    whens = [(col(AuditEvent.time) >= day_start(d), d.isoformat()) for d in reversed(days)]
    day_key: Any = case(*whens, else_=days[0].isoformat())
    kind = _kind()
    stmt = (
        select(day_key, kind, func.count())
        .where(
            col(AuditEvent.time) >= day_start(days[0]),
            col(AuditEvent.time) < day_start(days[-1] + timedelta(days=1)),
            _counted(),
        )
        .group_by(day_key, kind)
    )
    for key, what, n in session.execute(stmt).all():
        day = date.fromisoformat(key)
        if what in KINDS and day in out:
            out[day][what] += int(n)
    return out


def roll_up(session: Session, *, now: datetime | None = None) -> int:
    """Roll the settled days of the last `ROLL_UP_DAYS` not rolled up yet into `audit_day`
    (a row per kind, zeros too: a day with rows is closed). Run by the sealer after each
    round; returns how many days it closed. The caller commits."""
    now = now or utcnow()
    today = now.astimezone(hospital_zone()).date()
    last = today - timedelta(days=1)
    while (
        last >= today - timedelta(days=ROLL_UP_DAYS)
        and day_start(last + timedelta(days=1)) > now - SETTLE
    ):
        last -= timedelta(days=1)
    first = last - timedelta(days=ROLL_UP_DAYS - 1)
    closed = set(
        session.exec(
            select(col(AuditDay.day)).where(col(AuditDay.day) >= first, col(AuditDay.day) <= last)
        ).all()
    )
    todo = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    todo = [d for d in todo if d not in closed]
    done = 0
    # Runs of consecutive open days (a month at most), each counted in one grouped query.
    while todo:
        run = [todo.pop(0)]
        while todo and todo[0] == run[-1] + timedelta(days=1) and len(run) < DAYS:
            run.append(todo.pop(0))
        for day, counts in _raw(session, run).items():
            session.add_all(AuditDay(day=day, kind=k, events=n) for k, n in counts.items())
            done += 1
    session.flush()
    return done


def activity(session: Session, *, now: datetime | None = None, days: int = DAYS) -> Activity:
    """Per day: successful record views, refused attempts (any action), and break-glass
    accesses (`emergency-access`, allowed or not). Closed days are read from `audit_day`
    (rolled up by the sealer); the others (today, yesterday, any day not rolled up) are
    counted from the audit log in one grouped query over the partial index."""
    today = (now or utcnow()).astimezone(hospital_zone()).date()
    first = today - timedelta(days=days - 1)
    starts = [first + timedelta(days=i) for i in range(days)]
    by_day = {d: Day(day=d) for d in starts}
    closed: set[date] = set()
    for day, kind, n in session.execute(
        select(col(AuditDay.day), col(AuditDay.kind), col(AuditDay.events)).where(
            col(AuditDay.day) >= first, col(AuditDay.day) <= today
        )
    ).all():
        if day in by_day and kind in KINDS:
            by_day[day].counts[kind] = int(n)
            closed.add(day)
    open_days = [d for d in starts if d not in closed]
    if open_days:
        # One query from the oldest open day to today (closed days inside it are dropped).
        span = [d for d in starts if d >= open_days[0]]
        for day, counts in _raw(session, span).items():
            if day not in closed:
                by_day[day].counts.update(counts)
    return Activity(days=[by_day[d] for d in starts])
