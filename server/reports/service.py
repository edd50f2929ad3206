"""The figures behind the supervisor's reports: DNFB aging and coder productivity.

Both read only clear metadata (ids, statuses, classes, dates of service, event times):
no patient data goes in or out, so neither needs the audited record door.

**DNFB** (discharged, not final billed): every work item whose encounter was discharged
(its end of service, else its start, is at or before now) and which is not yet `billed`,
whatever else its status (ready, in progress, on hold, QA, ready for billing, returned).
Its age is whole days between the discharge date and today, both as calendar dates in the
hospital's zone (`CHARTDESK_AUDIT_TIMEZONE`): discharged today is 0, yesterday 1. Charges
are not in clear anywhere (the charge of each line is sealed with the code lines under the
encounter's key), so `charges` is None: unknown, never a made-up zero.

**Productivity**: for each coder, the charts they submitted in [since, until) and the hours
of the leases that ended in those submits. A lease starts when the item goes to the coder in
progress (`claim`, `assign`, `reassign`, `resume`) and ends at the next event that takes it
from them; only a lease that ends with the coder's own `submit` counts. Idle leases, the
ones that ended by release, expiry, hold or reassignment without a submit, are not counted
in hours (nor are their charts). A chart returned by billing and submitted again counts again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, text
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.config import get_settings
from server.db import is_sqlite
from server.edits.drg import weight_of as drg_weight
from server.errors import ValidationFailed
from server.models import AuditEvent, Encounter, Queue, Status, User, WorkItem, WorkItemEvent
from server.models.base import utcnow
from server.models.report import CodingDay, ProductivityStandard
from server.queue import items
from server.reports import quality

# (label, oldest age in days in the bucket); the last bucket is open-ended.
BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("0-3", 3),
    ("4-7", 7),
    ("8-14", 14),
    ("15-30", 30),
    ("31+", None),
)
BUCKET_LABELS = tuple(label for label, _ in BUCKETS)
DNFB_GROUPINGS = ("queue", "class", "payer_class")
UNBILLED = tuple(s.value for s in Status if s != Status.billed)
UNKNOWN = "(none)"

# Events that hand an item to a coder in progress: a lease starts.
LEASE_STARTS = items.LEASE_STARTS
MAX_PRODUCTIVITY_DAYS = 366


def hospital_zone() -> ZoneInfo:
    """The hospital's time zone (days are counted in it)."""
    return ZoneInfo(get_settings().audit_timezone)


def discharge_at() -> Any:
    """The SQL expression of an encounter's discharge moment: end of service, else start."""
    return func.coalesce(col(Encounter.end_at), col(Encounter.start_at))


def age_days(discharged: datetime, as_of: datetime) -> int:
    """Whole days from the discharge date to the date of `as_of`, in the hospital's zone."""
    zone = hospital_zone()
    return (as_of.astimezone(zone).date() - discharged.astimezone(zone).date()).days


def bucket_of(days: int) -> str:
    """The DNFB bucket label of an age in whole days."""
    for label, oldest in BUCKETS:
        if oldest is None or days <= oldest:
            return label
    return BUCKET_LABELS[-1]  # pragma: no cover - the last bucket is open-ended


def day_start(day: date) -> datetime:
    """Midnight of `day` in the hospital's zone, as a UTC moment."""
    return datetime.combine(day, time(0), tzinfo=hospital_zone()).astimezone(UTC)


@dataclass
class Bucket:
    """One age bucket: how many discharged, unbilled items, and their charges if known."""

    label: str
    count: int = 0
    charges: float | None = None


def _empty_buckets() -> list[Bucket]:
    return [Bucket(label=label) for label in BUCKET_LABELS]


@dataclass
class DnfbGroup:
    """The buckets of one queue, encounter class or payer class."""

    key: str
    buckets: list[Bucket] = field(default_factory=_empty_buckets)

    @property
    def total(self) -> int:
        """Items in every bucket of the group."""
        return sum(b.count for b in self.buckets)


@dataclass
class DnfbReport:
    """DNFB as of a moment: totals per bucket and the same per group."""

    as_of: datetime
    by: str
    buckets: list[Bucket]
    groups: list[DnfbGroup]
    charges_available: bool = False

    @property
    def total(self) -> int:
        """Discharged, unbilled items in all."""
        return sum(b.count for b in self.buckets)


def check_grouping(by: str) -> None:
    """422 unless `by` is a DNFB grouping (queue, class, payer_class)."""
    if by not in DNFB_GROUPINGS:
        raise ValidationFailed(
            "Group DNFB by queue, class or payer_class.",
            details=[{"loc": ["by"], "msg": "one of: queue, class, payer_class"}],
        )


def dnfb(session: Session, *, by: str = "queue", as_of: datetime | None = None) -> DnfbReport:
    """Discharged, not final billed items by days since discharge, grouped by `by`.

    One grouped query: each item's bucket is decided in SQL by comparing its discharge
    moment (kept on the item) with the local midnights that bound the buckets, so the count
    scales with the index, not with Python.
    """
    check_grouping(by)
    as_of = (as_of or utcnow()).astimezone(UTC)
    today = as_of.astimezone(hospital_zone()).date()
    # The discharge moment and classes kept beside the status (migration 0027): the count
    # is read from ix_work_item_dnfb alone, whatever the grouping.
    discharged = col(WorkItem.discharged_at)
    whens = [
        (discharged >= day_start(today - timedelta(days=oldest)), label)
        for label, oldest in BUCKETS
        if oldest is not None
    ]
    bucket = case(*whens, else_=BUCKET_LABELS[-1])
    filters = (
        col(WorkItem.status).in_(UNBILLED),  # IN, not !=: the index's first column serves it
        discharged.is_not(None),
        discharged <= as_of,
    )
    key: Any = {
        "queue": col(WorkItem.queue_id),
        "class": col(WorkItem.encounter_class),
        "payer_class": col(WorkItem.payer_class),
    }[by]
    found: list[Any] = list(
        session.execute(select(key, bucket, func.count()).where(*filters).group_by(key, bucket))
    )
    if by == "queue":  # grouped by id in the index, named after: a few queues, no join
        names = dict(session.execute(sa_select(col(Queue.id), col(Queue.name))).all())
        found = [(names.get(q), label, n) for q, label, n in found]
    totals = {b.label: b for b in _empty_buckets()}
    groups: dict[str, DnfbGroup] = {}
    for group_key, label, count in found:
        name = group_key if group_key else UNKNOWN
        group = groups.setdefault(name, DnfbGroup(key=name))
        group.buckets[BUCKET_LABELS.index(label)].count += count
        totals[label].count += count
    ordered = sorted(groups.values(), key=lambda g: (g.key == UNKNOWN, g.key))
    return DnfbReport(as_of=as_of, by=by, buckets=list(totals.values()), groups=ordered)


# ---------------------------------------------------------------- productivity


@dataclass
class ClassFigures:
    """A coder's figures for one encounter class, and the class's standard (charts per hour
    set by a supervisor; None when not set)."""

    encounter_class: str
    charts: int = 0
    seconds: float = 0.0
    standard: float | None = None

    @property
    def hours(self) -> float:
        """Hours of counted leases, to two decimals."""
        return round(self.seconds / 3600, 2)

    @property
    def charts_per_hour(self) -> float | None:
        """Charts per counted hour (None without any counted time)."""
        return round(self.charts / (self.seconds / 3600), 2) if self.seconds > 0 else None

    @property
    def percent_of_standard(self) -> float | None:
        """Charts per hour as a percentage of the class's standard (None: no standard or
        no counted time)."""
        if self.standard is None or self.standard <= 0 or self.seconds <= 0:
            return None
        return round(100 * self.charts / (self.seconds / 3600) / self.standard, 1)


@dataclass
class CoderFigures(ClassFigures):
    """One coder's productivity over the window, in all and per encounter class, with their
    QA accuracy and case-mix (the mean relative weight of the final DRGs they submitted)."""

    coder: str = ""
    by_class: list[ClassFigures] = field(default_factory=list)
    reviewed: int = 0
    accepted: int = 0
    weight_sum: float = 0.0
    weighted: int = 0  # submits whose final DRG has a known weight

    @property
    def accuracy_percent(self) -> float | None:
        """QA reviews accepted as a share of reviewed (None before the first review)."""
        return round(100 * self.accepted / self.reviewed, 1) if self.reviewed else None

    @property
    def case_mix(self) -> float | None:
        """Mean relative weight of the final DRGs submitted (None: no inpatient stay)."""
        return round(self.weight_sum / self.weighted, 4) if self.weighted else None

    @property
    def percent_of_standard(self) -> float | None:
        """Standard hours earned (each class's charts ÷ its standard) as a percentage of the
        hours worked, over the classes that have a standard and counted time."""
        earned = worked = 0.0
        for k in self.by_class:
            if k.standard and k.standard > 0 and k.seconds > 0:
                earned += k.charts / k.standard
                worked += k.seconds / 3600
        return round(100 * earned / worked, 1) if worked > 0 else None


@dataclass
class ProductivityReport:
    """Productivity per coder over [since, until)."""

    since: datetime
    until: datetime
    coders: list[CoderFigures]


def default_window(now: datetime | None = None, *, days: int = 7) -> tuple[datetime, datetime]:
    """The last `days` whole days in the hospital's zone up to the end of today."""
    now = now or utcnow()
    today = now.astimezone(hospital_zone()).date()
    return day_start(today - timedelta(days=days - 1)), day_start(today + timedelta(days=1))


def check_window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """The window asked for, defaults filled in; 422 if it is backwards or over a year."""
    default_since, default_until = default_window()
    since = _aware(since) if since else None
    until = _aware(until) if until else None
    if since is None and until is None:
        since, until = default_since, default_until
    elif since is None:
        assert until is not None  # noqa: S101
        since = until - timedelta(days=7)
    elif until is None:
        until = max(default_until, since + timedelta(days=1))
    if until <= since:
        raise ValidationFailed(
            "The window ends before it starts.",
            details=[{"loc": ["until"], "msg": "must be after since"}],
        )
    if until - since > timedelta(days=MAX_PRODUCTIVITY_DAYS):
        raise ValidationFailed(
            "The window is longer than a year.",
            details=[{"loc": ["since"], "msg": f"at most {MAX_PRODUCTIVITY_DAYS} days"}],
        )
    return since, until


def parse_moment(value: str | None, *, field: str, end: bool = False) -> datetime | None:
    """An ISO 8601 time, or a date (its local midnight; as `end`, the midnight after it).

    A date as the end of a window includes that whole day, as on the compliance search.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return day_start(day + timedelta(days=1) if end else day)
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        raise ValidationFailed(
            "Dates are YYYY-MM-DD or YYYY-MM-DDTHH:MM.",
            details=[{"loc": [field], "msg": "not a date or time"}],
        ) from None


def parse_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """A report's window as typed: `since` from its first moment, `until` through its end."""
    return parse_moment(since, field="since"), parse_moment(until, field="until", end=True)


def _aware(value: datetime) -> datetime:
    """A naive time is read in the hospital's zone."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=hospital_zone())
    return value.astimezone(UTC)


def whole_days(since: datetime, until: datetime) -> tuple[date, date] | None:
    """The local days lying wholly inside [since, until) as [first, stop), or None."""
    zone = hospital_zone()
    first = since.astimezone(zone).date()
    if day_start(first) < since:
        first += timedelta(days=1)
    stop = until.astimezone(zone).date()
    if stop <= first:
        return None
    return first, stop


def productivity(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    coder_id: int | None = None,
) -> ProductivityReport:
    """Charts submitted per coder in [since, until), the hours of their leases, per class
    (one coder's alone with `coder_id`).

    Whole local days are read from `coding_day` (kept on submit: charts and lease seconds
    per day, coder, class and final DRG); only a window's partial first and last day are
    summed from the raw submits (each with the lease start kept on it).
    """
    since, until = check_window(since, until)
    if not is_sqlite(session):
        # A few small grouped reads: JIT compilation costs more than it saves.
        session.execute(text("SET LOCAL jit = off"))
    rows: list[tuple[Any, ...]] = []
    days = whole_days(since, until)
    if days is None:
        rows += _raw_submits(session, since, until, coder_id)
    else:
        first, stop = days
        rows += _summary_rows(session, first, stop, coder_id)
        if since < day_start(first):
            rows += _raw_submits(session, since, day_start(first), coder_id)
        if day_start(stop) < until:
            rows += _raw_submits(session, day_start(stop), until, coder_id)
    per_coder: dict[str, CoderFigures] = {}
    per_class: dict[str, dict[str, ClassFigures]] = defaultdict(dict)
    standards = standards_by_class(session)
    for username, enc_class, drg, version, n, total in rows:
        spent = max(0.0, float(total or 0.0))
        coder = per_coder.setdefault(username, CoderFigures(encounter_class="", coder=username))
        klass = per_class[username].setdefault(
            enc_class, ClassFigures(encounter_class=enc_class, standard=standards.get(enc_class))
        )
        for figures in (coder, klass):
            figures.charts += int(n)
            figures.seconds += spent
        weight = drg_weight(drg, version) if drg else None
        if weight is not None:
            coder.weight_sum += weight * int(n)
            coder.weighted += int(n)
    scores = quality.accuracy(session, since=since, until=until, coder_id=coder_id)
    coders = []
    for username in sorted(per_coder):
        coder = per_coder[username]
        coder.by_class = [per_class[username][k] for k in sorted(per_class[username])]
        if username in scores:
            coder.reviewed, coder.accepted = scores[username].reviewed, scores[username].accepted
        coders.append(coder)
    return ProductivityReport(since=since, until=until, coders=coders)


def _summary_rows(
    session: Session, first: date, stop: date, coder_id: int | None
) -> list[tuple[Any, ...]]:
    """(coder, class, drg, version, charts, seconds) of the local days [first, stop), from
    `coding_day`."""
    stmt = (
        sa_select(
            col(User.username),
            col(CodingDay.encounter_class),
            col(CodingDay.drg),
            col(CodingDay.drg_version),
            func.sum(col(CodingDay.charts)),
            func.sum(col(CodingDay.lease_seconds)),
        )
        .join(User, col(User.id) == col(CodingDay.coder_id))
        .where(col(CodingDay.day) >= first, col(CodingDay.day) < stop)
        .group_by(
            col(User.username),
            col(CodingDay.encounter_class),
            col(CodingDay.drg),
            col(CodingDay.drg_version),
        )
    )
    if coder_id is not None:
        stmt = stmt.where(col(CodingDay.coder_id) == coder_id)
    return [tuple(r) for r in session.execute(stmt).all()]


def _raw_submits(
    session: Session, since: datetime, until: datetime, coder_id: int | None
) -> list[tuple[Any, ...]]:
    """(coder, class, drg, version, charts, seconds) of the submits in [since, until) (a
    partial day), each with the lease start before it: kept on the submit event (migration
    0023), else looked up (COALESCE runs the look-up for those only)."""
    start = WorkItemEvent.__table__.alias("lease_start")  # type: ignore[attr-defined]
    lookup = (
        select(start.c.at)
        .where(
            and_(
                start.c.work_item_id == col(WorkItemEvent.work_item_id),
                start.c.id < col(WorkItemEvent.id),
                start.c.action.in_(LEASE_STARTS),
                start.c.to_status == Status.in_progress,
            )
        )
        .order_by(start.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    lease_start: Any = func.coalesce(col(WorkItemEvent.lease_started_at), lookup)
    rows = (
        sa_select(
            col(User.username).label("coder"),
            # The class kept on the item (migration 0027): no look-up of the encounter.
            col(WorkItem.encounter_class).label("klass"),
            col(WorkItemEvent.at).label("submitted"),
            lease_start.label("started"),
            col(WorkItem.final_drg).label("drg"),
            col(WorkItem.final_drg_version).label("version"),
        )
        .select_from(WorkItemEvent)
        .join(User, col(User.id) == col(WorkItemEvent.actor_id))
        .join(WorkItem, col(WorkItem.id) == col(WorkItemEvent.work_item_id))
        .where(
            col(WorkItemEvent.action) == "submit",
            col(WorkItemEvent.at) >= since,
            col(WorkItemEvent.at) < until,
        )
    )
    if coder_id is not None:
        rows = rows.where(col(WorkItemEvent.actor_id) == coder_id)
    sub = rows.subquery()
    if is_sqlite(session):
        span: Any = (func.julianday(sub.c.submitted) - func.julianday(sub.c.started)) * 86400.0
    else:
        span = func.extract("epoch", sub.c.submitted - sub.c.started)
    seconds = func.sum(case((sub.c.started.is_(None), 0.0), else_=span))
    stmt = sa_select(
        sub.c.coder, sub.c.klass, sub.c.drg, sub.c.version, func.count(), seconds
    ).group_by(sub.c.coder, sub.c.klass, sub.c.drg, sub.c.version)
    return [tuple(r) for r in session.execute(stmt).all()]


def standards_by_class(session: Session) -> dict[str, float]:
    """The productivity standard (charts per hour) of each encounter class that has one."""
    rows = session.exec(select(ProductivityStandard)).all()
    return {r.encounter_class: r.charts_per_hour for r in rows}


MY_ACTIVITY_DAYS = 30
MY_ACTIVITY_LIMIT = 200


def my_activity(session: Session, *, actor: Principal) -> list[AuditEvent]:
    """The caller's own audit events of the last 30 days, newest first (at most 200).

    Reading the audit log is itself audited, as for compliance (`audit-search`).
    """
    since = utcnow() - timedelta(days=MY_ACTIVITY_DAYS)
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.audit_search,
        purpose=None,
        detail=f"own activity since={since.isoformat()}",
    )
    return list(
        session.exec(
            select(AuditEvent)
            .where(
                col(AuditEvent.actor) == actor.name,
                col(AuditEvent.actor_kind) == "user",
                col(AuditEvent.time) >= since,
            )
            .order_by(col(AuditEvent.time).desc(), col(AuditEvent.id).desc())
            .limit(MY_ACTIVITY_LIMIT)
        ).all()
    )
