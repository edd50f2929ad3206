"""Compliance search over the audit log: filters, keyset pages, the patient lookup.

Every search is itself written to the audit log (the MRN only as its blind index). Events
carry ids only, so nothing here can leak patient data.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.audit.service import Action, Outcome
from server.auth.deps import InStatementCaller
from server.auth.principal import Principal
from server.db import AsyncPool
from server.errors import ValidationFailed
from server.keyring import mrn_index
from server.models import AuditEvent, Patient

MAX_LIMIT = 500
PURPOSE = "HCOMPL"  # HL7 v3 ActReason: health compliance
# Every purpose of use the audit log records (HL7 v3 ActReason), with what it means: the
# legend shows them, and a compliance officer picks one for a patient identity lookup.
PURPOSE_TITLES: dict[str, str] = {
    "TREAT": "Treatment: coding work on the user's own chart",
    "ETREAT": "Emergency treatment: break-glass access",
    "HOPERAT": "Healthcare operations: QA review, billing",
    "HCOMPL": "Compliance: audit search, export, verification, flag review",
}


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
    """The filter checked and tidied (a copy: the caller's is left as sent), or a 422 listing
    every problem: unknown actions/outcomes, times outside the calendar, backwards ranges."""
    flt = replace(flt)
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
    flt.action, flt.outcome = flt.action or None, flt.outcome or None  # "": no filter
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


def filtered_events(session: Session, flt: EventFilter) -> tuple[Any | None, str | None, list[int]]:
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


def audited_events(
    session: Session, *, actor: Principal, flt: EventFilter, detail: str
) -> tuple[Any | None, list[int]]:
    """The events query for `flt` (None: nothing can match) and the patients it names (ids),
    the search audited first."""
    stmt, index, ids = filtered_events(session, flt)
    audit_service.record(
        session,
        actor=actor,
        action=Action.audit_search,
        purpose=PURPOSE,
        mrn_index=index,
        patient_id=ids[0] if len(ids) == 1 else None,
        detail=detail,
    )
    return stmt, ids


def search(
    session: Session,
    *,
    actor: Principal,
    flt: EventFilter,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Events matching `flt`, newest first, `limit` per page; the search itself is audited."""
    flt, before = check_search(flt, limit=limit, cursor=cursor)
    stmt, _ = audited_events(session, actor=actor, flt=flt, detail=flt.describe())
    if stmt is None:
        return Page(events=[], next_cursor=None)
    if before:
        when, ident = before
        stmt = stmt.where(
            or_(
                col(AuditEvent.time) < when,
                and_(col(AuditEvent.time) == when, col(AuditEvent.id) < ident),
            )
        )
    stmt = stmt.order_by(col(AuditEvent.time).desc(), col(AuditEvent.id).desc()).limit(limit + 1)
    return _page(list(session.exec(stmt).all()), limit=limit)


def check_search(
    flt: EventFilter, *, limit: int, cursor: str | None
) -> tuple[EventFilter, tuple[datetime, int] | None]:
    """The checked filter and the cursor's (time, id), or a 422 naming the bad field."""
    flt = check_filter(flt)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(
            "Invalid audit search.", details=[{"loc": "limit", "msg": f"1 to {MAX_LIMIT}"}]
        )
    return flt, decode_cursor(cursor) if cursor else None


def _page(rows: list[Any], *, limit: int) -> Page:
    """A page from up to `limit + 1` events, newest first (one more: there is a next page)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(events=rows, next_cursor=encode_cursor(rows[-1]) if more and rows else None)


class EventRow(NamedTuple):
    """An event as the one-trip search reads it (the columns AuditEventView shows)."""

    refused: bool
    id: int
    time: datetime
    action: str
    outcome: str
    actor: str | None
    actor_roles: str
    work_item_id: int | None
    patient_id: int | None
    source_ip: str | None
    request_id: str | None
    purpose: str | None


_SEARCH_SESSION_SQL = (
    "SELECT * FROM chartdesk_audit_search_session(%(sid)s, %(activity)s, %(idle)s, "
    "%(max_hours)s, %(roles)s, %(now)s, %(ip)s, %(ua)s, %(rid)s, %(purpose)s, %(detail)s, "
    "%(mrn_index)s, %(actor)s, %(work_item)s, %(action)s, %(outcome)s, %(since)s, "
    "%(until)s, %(before)s, %(before_id)s, %(limit)s)"
)
REFUSED = "refused"


async def search_in_one_trip(
    pool: AsyncPool,
    *,
    caller: InStatementCaller,
    flt: EventFilter,
    limit: int,
    before: tuple[datetime, int] | None,
) -> Page | str:
    """`search` for a session, as one statement (migration 0030): the page, or REFUSED.

    `flt`, `limit` and `before` come checked from `check_search`. REFUSED: the session check
    said no and nothing was written; the caller runs the ordinary access rule, which answers
    (and audits) the refusal as every route does.
    """
    rows = await pool.fetch(
        _SEARCH_SESSION_SQL,
        {
            **caller.params(),
            "purpose": PURPOSE,
            "detail": flt.describe(),
            "mrn_index": patient_index(flt.patient_mrn) if flt.patient_mrn else None,
            "actor": flt.actor,
            "work_item": flt.work_item,
            "action": flt.action,
            "outcome": flt.outcome,
            "since": flt.since,
            "until": flt.until,
            "before": before[0] if before else None,
            "before_id": before[1] if before else None,
            "limit": limit + 1,
        },
        long=True,  # a search may walk a big log: it never holds all of Next's connections
    )
    if rows and rows[0][0]:
        return REFUSED
    events = [EventRow(*r)._replace(time=r[2].astimezone(UTC)) for r in rows]
    return _page(events, limit=limit)


def default_window(days: int = 7) -> tuple[datetime, datetime]:
    """[now - days, now + 1 minute): the default range of reports and flags."""
    now = datetime.now(UTC)
    return now - timedelta(days=days), now + timedelta(minutes=1)
