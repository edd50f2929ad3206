"""Compliance flags as cases: open, reviewed with a note, dismissed or escalated.

Flags are recomputed from the audit log (`reports.review_flags`); a case remembers what an
officer decided about one of them, under a stable key. A flag with no case is open. Every
change is a `flag_case_step` (who, when, status, note) and an audit event (`flag-review`,
purpose HCOMPL) in the same transaction. The note is about the access under review and is
stored in clear: the form asks for no patient data (refer to charts by work item number).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.audit.reports import FLAG_TITLES, Flag
from server.audit.search import PURPOSE
from server.auth.principal import Principal
from server.errors import Forbidden, ValidationFailed
from server.models import AuditEvent, FlagCase, FlagCaseStep
from server.models.base import utcnow

CASE_STATUSES = ("open", "reviewed", "dismissed", "escalated")
NOTE_REQUIRED = ("reviewed", "escalated")
PER_DAY = ("denied", "views-vs-claims")


def flag_key(flag: Flag) -> str:
    """A flag's stable name: kind and first event, or kind, user and day for per-day flags."""
    if flag.kind in PER_DAY or not flag.event_ids:
        return f"{flag.kind}:{flag.actor}:{flag.time.date().isoformat()}"[:200]
    return f"{flag.kind}:{flag.event_ids[0]}"


@dataclass
class FlagWithCase:
    """A flag, its key and its case (None: open, nobody has looked at it yet)."""

    flag: Flag
    key: str
    case: FlagCase | None

    @property
    def status(self) -> str:
        """The case's status, `open` without one."""
        return self.case.status if self.case else "open"


def with_cases(session: Session, flags: list[Flag]) -> list[FlagWithCase]:
    """Each flag with its case, in one query."""
    keys = [flag_key(f) for f in flags]
    cases = {
        c.flag_key: c
        for c in session.exec(select(FlagCase).where(col(FlagCase.flag_key).in_(keys))).all()
    }
    return [FlagWithCase(f, k, cases.get(k)) for f, k in zip(flags, keys, strict=True)]


def _flag_subject(session: Session, *, key: str, kind: str) -> tuple[str, int | None]:
    """(user, work item) a flag key names: its first event's, or the user of a per-day key."""
    rest = key[len(kind) + 1 :]
    if kind in PER_DAY or ":" in rest:
        user, _, _day = rest.rpartition(":")
        if user:
            return user[:100], None
    event = session.get(AuditEvent, int(rest)) if rest.isdigit() else None
    if event is None:
        raise ValidationFailed(
            "The review was not saved.", details=[{"loc": ["flag_key"], "msg": "not a flag"}]
        )
    return (event.actor or "?")[:100], event.work_item_id


def review_flag(
    session: Session,
    *,
    actor: Principal,
    key: str,
    kind: str,
    subject: str,
    work_item_id: int | None,
    status: str,
    note: str,
) -> FlagCase:
    """Set a flag's case to `status` with a note (required to review or escalate); audited."""
    note = note.strip()
    problems = []
    if kind not in FLAG_TITLES or not key.startswith(f"{kind}:"):
        problems.append({"loc": ["flag_key"], "msg": "not a flag"})
    if status not in CASE_STATUSES:
        problems.append({"loc": ["status"], "msg": f"one of: {', '.join(CASE_STATUSES)}"})
    if status in NOTE_REQUIRED and not note:
        problems.append({"loc": ["note"], "msg": f"a note is needed to mark a flag {status}"})
    if problems:
        raise ValidationFailed("The review was not saved.", details=problems)
    # Who and which chart a flag is about come from the log itself, never from the form.
    subject, work_item_id = _flag_subject(session, key=key, kind=kind)
    if subject == actor.name:
        raise Forbidden("A flag about you is reviewed by another compliance officer.")
    case = session.exec(select(FlagCase).where(FlagCase.flag_key == key)).first()
    now = utcnow()
    if case is None:
        case = FlagCase(
            flag_key=key,
            kind=kind,
            subject=subject,
            work_item_id=work_item_id,
            updated_by=actor.name,
        )
    case.status, case.note, case.updated_by, case.updated_at = status, note, actor.name, now
    session.add(case)
    session.flush()
    assert case.id is not None  # noqa: S101
    session.add(FlagCaseStep(case_id=case.id, status=status, note=note, by=actor.name, at=now))
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.flag_review,
        work_item_id=work_item_id,
        purpose=PURPOSE,
        detail=f"flag case {case.id} ({kind}) -> {status}",
    )
    session.flush()
    return case


def case_steps(session: Session, *, case_ids: list[int]) -> dict[int, list[FlagCaseStep]]:
    """Every step of the given cases, oldest first, by case id."""
    steps: dict[int, list[FlagCaseStep]] = {i: [] for i in case_ids}
    for step in session.exec(
        select(FlagCaseStep)
        .where(col(FlagCaseStep.case_id).in_(case_ids))
        .order_by(col(FlagCaseStep.id))
    ).all():
        steps[step.case_id].append(step)
    return steps
