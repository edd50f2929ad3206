"""Compliance review: search with keyset pagination, reports, flags, CSV and FHIR exports.

Every search, export and verification is itself written to the audit log (with the MRN
only as its blind index). Events carry ids only, so nothing here can leak patient data.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.audit.chain import VerifyReport, seal_pending, verify
from server.audit.service import Action, Outcome
from server.auth.principal import Principal
from server.config import get_settings
from server.csvsafe import SafeWriter
from server.db import is_sqlite, session_scope
from server.errors import ValidationFailed
from server.keyring import mrn_index
from server.models import AuditEvent, Patient, User

MAX_LIMIT = 500
PURPOSE = "HCOMPL"  # HL7 v3 ActReason: health compliance


# ---------------------------------------------------------------- search


@dataclass
class EventFilter:
    """Search filters; `patient_mrn` is turned into patient ids through the blind index."""

    actor: str | None = None
    patient_mrn: str | None = None
    work_item: int | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def describe(self) -> str:
        """The filters for the audit-search event's detail (never the MRN itself)."""
        parts = [
            f"{name}={value.isoformat() if isinstance(value, datetime) else value}"
            for name, value in (
                ("actor", self.actor),
                ("work_item", self.work_item),
                ("action", self.action),
                ("outcome", self.outcome),
                ("since", self.since),
                ("until", self.until),
            )
            if value not in (None, "")
        ]
        if self.patient_mrn:
            parts.append("patient=<blind index>")
        return ("filters: " + (" ".join(parts) or "none"))[:500]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_filter(flt: EventFilter) -> EventFilter:
    """Refuse unknown actions/outcomes and backwards ranges (422, every problem listed)."""
    problems: list[dict[str, str]] = []
    if flt.action and flt.action not in {a.value for a in Action}:
        problems.append({"loc": "action", "msg": f"unknown action {flt.action!r}"})
    if flt.outcome and flt.outcome not in {o.value for o in Outcome}:
        problems.append({"loc": "outcome", "msg": "outcome is success, denied or failed"})
    try:
        flt.since, flt.until = _aware(flt.since), _aware(flt.until)
    except OverflowError:
        problems.append({"loc": "since", "msg": "a time outside the calendar"})
        flt.since = flt.until = None
    if flt.since and flt.until and flt.since > flt.until:
        problems.append({"loc": "since", "msg": "since is after until"})
    if problems:
        raise ValidationFailed("Invalid audit search.", details=problems)
    flt.actor = (flt.actor or "").strip() or None
    flt.patient_mrn = (flt.patient_mrn or "").strip() or None
    return flt


def patient_index(mrn: str) -> str:
    """The blind index of an MRN, exactly as the records domain stores it."""
    return mrn_index(mrn)


def patient_ids(session: Session, *, mrn: str) -> tuple[str, list[int]]:
    """(blind index, ids of the patients with this MRN in any source system)."""
    index = patient_index(mrn)
    ids = session.exec(select(Patient.id).where(Patient.mrn_index == index)).all()
    return index, [i for i in ids if i is not None]


def encode_cursor(event: AuditEvent) -> str:
    """An opaque keyset cursor: the (time, id) of the last event on the page."""
    raw = f"{event.time.isoformat()}|{event.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (time, id) inside a cursor, or a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        moment = _aware(datetime.fromisoformat(when))
        number = int(ident)
        if moment is None or not 0 < number < 2**63:
            raise ValueError(cursor)
        return moment, number
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            "Invalid cursor.", details=[{"loc": "cursor", "msg": "pass next_cursor back as is"}]
        ) from None


def _filtered(session: Session, flt: EventFilter) -> tuple[Any | None, str | None, list[int]]:
    """(a select of matching events or None when the MRN matches nobody, index, ids)."""
    stmt = select(AuditEvent)
    index: str | None = None
    ids: list[int] = []
    if flt.patient_mrn:
        index, ids = patient_ids(session, mrn=flt.patient_mrn)
        if not ids:
            return None, index, ids
        stmt = stmt.where(col(AuditEvent.patient_id).in_(ids))
    if flt.actor:
        stmt = stmt.where(AuditEvent.actor == flt.actor)
    if flt.work_item is not None:
        stmt = stmt.where(AuditEvent.work_item_id == flt.work_item)
    if flt.action:
        stmt = stmt.where(AuditEvent.action == flt.action)
    if flt.outcome:
        stmt = stmt.where(AuditEvent.outcome == flt.outcome)
    if flt.since:
        stmt = stmt.where(AuditEvent.time >= flt.since)
    if flt.until:
        stmt = stmt.where(AuditEvent.time < flt.until)
    return stmt, index, ids


@dataclass
class Page:
    """One page of search results."""

    events: list[AuditEvent]
    next_cursor: str | None


def search(
    session: Session,
    *,
    actor: Principal,
    flt: EventFilter,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Events matching `flt`, newest first, `limit` per page; the search itself is audited."""
    flt = check_filter(flt)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(
            "Invalid audit search.", details=[{"loc": "limit", "msg": f"1 to {MAX_LIMIT}"}]
        )
    stmt, index, ids = _filtered(session, flt)
    audit_service.record(
        session,
        actor=actor,
        action=Action.audit_search,
        purpose=PURPOSE,
        mrn_index=index,
        patient_id=ids[0] if len(ids) == 1 else None,
        detail=flt.describe(),
    )
    if stmt is None:
        return Page(events=[], next_cursor=None)
    if cursor:
        when, ident = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                col(AuditEvent.time) < when,
                and_(col(AuditEvent.time) == when, col(AuditEvent.id) < ident),
            )
        )
    stmt = stmt.order_by(col(AuditEvent.time).desc(), col(AuditEvent.id).desc()).limit(limit + 1)
    rows = list(session.exec(stmt).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(events=rows, next_cursor=encode_cursor(rows[-1]) if more and rows else None)


# ---------------------------------------------------------------- reports


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
    stmt, index, ids = _filtered(session, flt)
    audit_service.record(
        session,
        actor=actor,
        action=Action.audit_search,
        purpose=PURPOSE,
        mrn_index=index,
        patient_id=ids[0] if len(ids) == 1 else None,
        detail="patient access report",
    )
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
    stmt, _, _ = _filtered(session, flt)
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
    "views-vs-claims": "Many more charts viewed than claimed",
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
                    f"viewed {len(items)} charts, claimed {claims[who]}",
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


# ---------------------------------------------------------------- export

CSV_COLUMNS = [
    "id",
    "time",
    "action",
    "outcome",
    "actor",
    "actor_kind",
    "actor_roles",
    "patient",
    "work_item",
    "source_ip",
    "user_agent",
    "request_id",
    "purpose",
    "detail",
]
EXPORT_FORMATS = ("fhir", "csv")

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
BALP_PATIENT_READ = (
    "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
)
_TYPES: dict[str, tuple[str, str]] = {
    Action.view_record: ("110110", "Patient Record"),
    Action.sign_in: ("110114", "User Authentication"),
    Action.sign_in_failed: ("110114", "User Authentication"),
    Action.sign_out: ("110114", "User Authentication"),
    Action.session_timeout: ("110114", "User Authentication"),
    Action.lockout: ("110114", "User Authentication"),
    Action.claim_export: ("110106", "Export"),
    Action.audit_export: ("110106", "Export"),
    Action.audit_search: ("110112", "Query"),
    Action.ingest: ("110107", "Import"),
    Action.key_rotate: ("110113", "Security Alert"),
    Action.user_admin: ("110113", "Security Alert"),
    Action.token_admin: ("110113", "Security Alert"),
    Action.emergency_access: ("110110", "Patient Record"),
}
_CRUD: dict[str, str] = {
    Action.view_record: "R",
    Action.emergency_access: "R",
    Action.audit_search: "E",
    Action.audit_export: "R",
    Action.claim_export: "R",
    Action.ingest: "C",
    Action.code_save: "U",
    Action.submit: "U",
    Action.purge: "D",
}
_OUTCOME: dict[str, str] = {Outcome.success: "0", Outcome.denied: "4", Outcome.failed: "8"}


def fhir_audit_event(event: AuditEvent) -> dict[str, Any]:
    """A FHIR R4 AuditEvent in the IHE BALP style: agent, patient entity, outcome, purpose."""
    action = event.action
    code, display = _TYPES.get(action, ("110100", "Application Activity"))
    agent_type = {"user": "humanuser", "token": "application", "system": "application"}
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                    "code": agent_type.get(event.actor_kind, "humanuser"),
                }
            ]
        },
        "who": {
            "identifier": {"system": f"urn:chartdesk:{event.actor_kind}", "value": event.actor}
        },
        "requestor": True,
    }
    if event.actor_roles:  # FHIR has no empty arrays
        agent["role"] = [{"text": role} for role in event.actor_roles.split()]
    if event.source_ip:
        agent["network"] = {"address": event.source_ip, "type": "2"}
    if event.purpose:
        agent["purposeOfUse"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": event.purpose,
                    }
                ]
            }
        ]
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event.id),
        "type": {"system": _DCM, "code": code, "display": display},
        "subtype": [{"system": "urn:chartdesk:audit-action", "code": action}],
        "action": _CRUD.get(action, "E"),
        "recorded": event.time.isoformat(),
        "outcome": _OUTCOME.get(event.outcome, "8"),
        "agent": [agent],
        "source": {
            "observer": {"display": "Chartdesk"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": [],
    }
    if action in (Action.view_record, Action.emergency_access):
        resource["meta"] = {"profile": [BALP_PATIENT_READ]}
    if event.outcome != Outcome.success and event.detail:
        resource["outcomeDesc"] = event.detail
    if event.purpose:
        resource["purposeOfEvent"] = agent["purposeOfUse"]
    if event.patient_id is not None:
        resource["entity"].append(
            {
                "what": {"reference": f"Patient/{event.patient_id}"},
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "1",
                    "display": "Person",
                },
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "1",
                    "display": "Patient",
                },
            }
        )
    if event.work_item_id is not None:
        resource["entity"].append(
            {
                "what": {
                    "identifier": {
                        "system": "urn:chartdesk:work-item",
                        "value": str(event.work_item_id),
                    }
                },
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "2",
                    "display": "System Object",
                },
            }
        )
    if event.request_id:
        resource["entity"].append(
            {
                "what": {
                    "identifier": {"system": "urn:chartdesk:request-id", "value": event.request_id}
                }
            }
        )
    if not resource["entity"]:
        del resource["entity"]
    return resource


def csv_row(event: AuditEvent) -> list[Any]:
    """One CSV line of an event, in CSV_COLUMNS order."""
    return [
        event.id,
        event.time.isoformat(),
        event.action,
        event.outcome,
        event.actor or "",
        event.actor_kind,
        event.actor_roles,
        "" if event.patient_id is None else event.patient_id,
        "" if event.work_item_id is None else event.work_item_id,
        event.source_ip or "",
        event.user_agent or "",
        event.request_id or "",
        event.purpose or "",
        event.detail or "",
    ]


def check_export(fmt: str, since: datetime | None, until: datetime | None) -> EventFilter:
    """Validate an export request (422 listing each problem)."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed(
            "Invalid export.", details=[{"loc": "format", "msg": "format is fhir or csv"}]
        )
    return check_filter(EventFilter(since=since, until=until))


def record_export(session: Session, *, actor: Principal, fmt: str, flt: EventFilter) -> None:
    """Write the audit-export event (in the caller's transaction, before data leaves)."""
    audit_service.record(
        session,
        actor=actor,
        action=Action.audit_export,
        purpose=PURPOSE,
        detail=f"format={fmt} {flt.describe()}"[:500],
    )


def export_lines(fmt: str, flt: EventFilter, *, chunk: int = 2000) -> Iterator[str]:
    """The export, streamed in id order from its own read session (NDJSON or CSV text)."""
    if fmt == "csv":
        buf = io.StringIO()
        SafeWriter(buf).writerow(CSV_COLUMNS)
        yield buf.getvalue()
    last = 0
    while True:
        with session_scope() as session:
            stmt = select(AuditEvent).where(col(AuditEvent.id) > last)
            if flt.since:
                stmt = stmt.where(AuditEvent.time >= flt.since)
            if flt.until:
                stmt = stmt.where(AuditEvent.time < flt.until)
            rows = list(session.exec(stmt.order_by(col(AuditEvent.id)).limit(chunk)).all())
        if not rows:
            return
        buf = io.StringIO()
        if fmt == "csv":
            writer = SafeWriter(buf)
            for event in rows:
                writer.writerow(csv_row(event))
        else:
            for event in rows:
                buf.write(json.dumps(fhir_audit_event(event), separators=(",", ":")) + "\n")
        yield buf.getvalue()
        last = rows[-1].id or last
        if len(rows) < chunk:
            return


def default_window(days: int = 7) -> tuple[datetime, datetime]:
    """[now - days, now + 1 minute): the default range of reports and flags."""
    now = datetime.now(UTC)
    return now - timedelta(days=days), now + timedelta(minutes=1)
