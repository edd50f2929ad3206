"""Compliance reports: a patient's accesses, a user's activity, the flags to review, and
verifying the chain; each is itself audited."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.audit.chain import VerifyReport, seal_pending, verify
from server.audit.search import PURPOSE, EventFilter, audited_events, check_filter, filtered_events
from server.audit.service import Action, Outcome
from server.auth.principal import Principal
from server.config import get_settings
from server.db import is_sqlite
from server.models import AuditEvent, User


@dataclass
class ActorSummary:
    """One person's accesses to a patient."""

    actor: str
    roles: str
    count: int
    first: datetime
    last: datetime
    work_items: list[int]
    denied: int


@dataclass
class PatientReport:
    """Everyone who touched one patient's records (found by MRN), and every event."""

    found: bool
    patients: list[int]
    by_actor: list[ActorSummary]
    events: list[AuditEvent]


def patient_report(session: Session, *, actor: Principal, mrn: str) -> PatientReport:
    """Who saw this patient, when and why; audited as an audit-search."""
    flt = check_filter(EventFilter(patient_mrn=mrn))
    stmt, ids = audited_events(session, actor=actor, flt=flt, detail="patient access report")
    if stmt is None:
        return PatientReport(found=False, patients=[], by_actor=[], events=[])
    events = list(
        session.exec(
            stmt.order_by(col(AuditEvent.time).desc(), col(AuditEvent.id).desc()).limit(5000)
        ).all()
    )
    groups: dict[str, list[AuditEvent]] = defaultdict(list)
    for event in events:
        groups[event.actor or "?"].append(event)
    summaries = [
        ActorSummary(
            actor=name,
            roles=evs[0].actor_roles,
            count=len(evs),
            first=min(e.time for e in evs),
            last=max(e.time for e in evs),
            work_items=sorted({e.work_item_id for e in evs if e.work_item_id is not None}),
            denied=sum(1 for e in evs if e.outcome != Outcome.success),
        )
        for name, evs in groups.items()
    ]
    summaries.sort(key=lambda s: s.last, reverse=True)
    return PatientReport(found=True, patients=ids, by_actor=summaries, events=events)


@dataclass
class UserReport:
    """One person's activity: counts per action and outcome, and the latest events."""

    username: str
    counts: list[tuple[str, str, int]]
    events: list[AuditEvent]
    patients_seen: int


def user_report(
    session: Session, *, actor: Principal, username: str, since: datetime, until: datetime
) -> UserReport:
    """What `username` did between `since` and `until`; audited as an audit-search."""
    flt = check_filter(EventFilter(actor=username, since=since, until=until))
    stmt, _, _ = filtered_events(session, flt)
    assert stmt is not None  # noqa: S101 - no patient filter here
    audit_service.record(
        session,
        actor=actor,
        action=Action.audit_search,
        purpose=PURPOSE,
        detail=f"user activity report: {flt.describe()}"[:500],
    )
    counts = session.exec(
        select(AuditEvent.action, AuditEvent.outcome, func.count())
        .where(AuditEvent.actor == flt.actor)
        .where(AuditEvent.time >= since, AuditEvent.time < until)
        .group_by(col(AuditEvent.action), col(AuditEvent.outcome))
        .order_by(col(AuditEvent.action), col(AuditEvent.outcome))
    ).all()
    patients = session.exec(
        select(func.count(func.distinct(AuditEvent.patient_id)))
        .where(AuditEvent.actor == flt.actor, AuditEvent.action == Action.view_record)
        .where(AuditEvent.time >= since, AuditEvent.time < until)
    ).one()
    events: list[AuditEvent] = list(
        session.exec(
            stmt.order_by(col(AuditEvent.time).desc(), col(AuditEvent.id).desc()).limit(200)
        ).all()
    )
    return UserReport(
        username=flt.actor or username,
        counts=[(a, o, int(n)) for a, o, n in counts],
        events=events,
        patients_seen=int(patients or 0),
    )


# ---------------------------------------------------------------- flags


@dataclass
class Flag:
    """Something a compliance officer should look at."""

    kind: str  # emergency-access, outside-lease, unusual-hours, views-vs-claims, denied
    actor: str
    time: datetime
    summary: str
    event_ids: list[int] = field(default_factory=list)
    work_item: int | None = None


FLAG_TITLES = {
    "emergency-access": "Emergency access",
    "outside-lease": "Record viewed outside the user's leased work",
    "unusual-hours": "Sign-in at an unusual hour",
    "views-vs-claims": "Many more charts viewed than leased",
    "denied": "Repeated refused attempts",
}


def _events(session: Session, since: datetime, until: datetime, *actions: str) -> list[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.time >= since, AuditEvent.time < until)
        .where(col(AuditEvent.action).in_(actions))
        .order_by(col(AuditEvent.time), col(AuditEvent.id))
        .limit(50_000)
    )
    return list(session.exec(stmt).all())


def _leased_pairs(session: Session, work_items: set[int], until: datetime) -> set[tuple[str, int]]:
    """(username, work item) pairs where the user held the item: claimed, resumed, assigned."""
    if not work_items:
        return set()
    rows = session.exec(
        select(AuditEvent.actor, AuditEvent.work_item_id, AuditEvent.action, AuditEvent.detail)
        .where(col(AuditEvent.work_item_id).in_(work_items), AuditEvent.time < until)
        .where(col(AuditEvent.action).in_([Action.claim, Action.resume, Action.assign]))
        .where(AuditEvent.outcome == Outcome.success)
    ).all()
    names = dict(session.exec(select(User.id, User.username)).all())
    pairs: set[tuple[str, int]] = set()
    for who, item, action, detail in rows:
        if item is None:
            continue
        if action == Action.assign:
            # queue.service writes "assign to user <id>" / "reassign to user <id>"
            tail = (detail or "").rsplit(" ", 1)[-1]
            if tail.isdigit() and int(tail) in names:
                pairs.add((names[int(tail)], item))
        elif who:
            pairs.add((who, item))
    return pairs


def review_flags(
    session: Session, *, actor: Principal, since: datetime, until: datetime
) -> list[Flag]:
    """Every flag raised by events between `since` and `until`, newest first; audited."""
    settings = get_settings()
    audit_service.record(
        session,
        actor=actor,
        action=Action.audit_search,
        purpose=PURPOSE,
        detail=f"review flags since={since.isoformat()} until={until.isoformat()}",
    )
    flags: list[Flag] = []
    for event in _events(session, since, until, Action.emergency_access):
        flags.append(
            Flag(
                "emergency-access",
                event.actor or "?",
                event.time,
                f"{event.outcome}: {event.detail or 'no reason given'}",
                [event.id or 0],
                event.work_item_id,
            )
        )
    views = [
        e
        for e in _events(session, since, until, Action.view_record)
        if e.outcome == Outcome.success
        and e.work_item_id is not None
        and not (e.detail or "").startswith("view=billing")
        and e.purpose != "HOPERAT"  # QA review: open_record let a supervisor see it for that
    ]
    held = _leased_pairs(session, {e.work_item_id for e in views if e.work_item_id}, until)
    for event in views:
        if (event.actor or "", event.work_item_id or 0) not in held:
            flags.append(
                Flag(
                    "outside-lease",
                    event.actor or "?",
                    event.time,
                    f"viewed work item {event.work_item_id} without holding it",
                    [event.id or 0],
                    event.work_item_id,
                )
            )
    zone = ZoneInfo(settings.audit_timezone)
    start, end = settings.audit_work_hours
    for event in _events(session, since, until, Action.sign_in):
        local = event.time.astimezone(zone)
        if event.outcome == Outcome.success and not start <= local.hour < end:
            flags.append(
                Flag(
                    "unusual-hours",
                    event.actor or "?",
                    event.time,
                    f"signed in at {local:%H:%M} {settings.audit_timezone} "
                    f"(working hours {start:02d}:00-{end:02d}:00)",
                    [event.id or 0],
                )
            )
    viewed: dict[str, set[int]] = defaultdict(set)
    for event in views:
        viewed[event.actor or "?"].add(event.work_item_id or 0)
    claims = Counter(
        e.actor or "?"
        for e in _events(session, since, until, Action.claim)
        if e.outcome == Outcome.success
    )
    for who, items in viewed.items():
        if len(items) > settings.audit_view_claim_ratio * claims[who] + 5:
            flags.append(
                Flag(
                    "views-vs-claims",
                    who,
                    until,
                    f"viewed {len(items)} charts, leased {claims[who]}",
                )
            )
    refused: dict[tuple[str, str], list[AuditEvent]] = defaultdict(list)
    for event in session.exec(
        select(AuditEvent)
        .where(AuditEvent.time >= since, AuditEvent.time < until)
        .where(AuditEvent.outcome != Outcome.success)
        .order_by(col(AuditEvent.time))
        .limit(50_000)
    ).all():
        refused[(event.actor or "?", event.time.date().isoformat())].append(event)
    for (who, day), evs in refused.items():
        if len(evs) >= settings.audit_denied_threshold:
            kinds = Counter(e.action for e in evs)
            flags.append(
                Flag(
                    "denied",
                    who,
                    evs[-1].time,
                    f"{len(evs)} refused attempts on {day}: "
                    + ", ".join(f"{k} x{n}" for k, n in kinds.most_common()),
                    [e.id or 0 for e in evs][:50],
                )
            )
    flags.sort(key=lambda f: f.time, reverse=True)
    return flags


# ---------------------------------------------------------------- verify


def verify_log(
    session: Session, *, actor: Principal, checkpoint: bool = False, jobs: int = 1
) -> VerifyReport:
    """Seal what is finished, verify the whole chain, and record the audit-verify event.

    On SQLite a request's transaction already holds the one write lock, so sealing is
    left to the background sealer there (the report counts what is not yet sealed).
    """
    if not (is_sqlite(session) and session.in_transaction()):
        seal_pending(wait=True, checkpoint=checkpoint)
    report = verify(connection=session.connection(), jobs=jobs)
    audit_service.record(
        session,
        actor=actor,
        action=Action.audit_verify,
        outcome=Outcome.success if report.ok else Outcome.failed,
        purpose=PURPOSE,
        detail=f"events_checked={report.events_checked} ok={report.ok}",
    )
    return report
