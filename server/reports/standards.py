"""The productivity standard per encounter class: charts per hour a coder is expected to
code, set by a supervisor. Every change is audited (`settings-admin`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.errors import ValidationFailed
from server.models.base import utcnow
from server.models.report import ProductivityStandard
from server.records.schemas import EncounterClass

CLASSES = tuple(c.value for c in EncounterClass)
MAX_CHARTS_PER_HOUR = 60.0


@dataclass
class StandardRow:
    """One class and its standard (None: not set), with who set it and when."""

    encounter_class: str
    charts_per_hour: float | None
    updated_by: str | None = None
    updated_at: datetime | None = None


def list_standards(session: Session) -> list[StandardRow]:
    """Every encounter class with its standard, set or not, in the classes' order."""
    rows = {r.encounter_class: r for r in session.exec(select(ProductivityStandard)).all()}
    out = []
    for klass in CLASSES:
        row = rows.get(klass)
        out.append(
            StandardRow(
                encounter_class=klass,
                charts_per_hour=row.charts_per_hour if row else None,
                updated_by=row.updated_by if row else None,
                updated_at=row.updated_at if row else None,
            )
        )
    return out


def parse_rate(value: object) -> float | None:
    """A standard as typed: a number of charts per hour, or empty (no standard); 422 at
    `charts_per_hour` otherwise."""
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not math.isfinite(rate) or rate <= 0 or rate > MAX_CHARTS_PER_HOUR:
        # The detail is part of the message, so the page's banner does not say it twice.
        detail = f"a number of charts per hour above 0 and at most {MAX_CHARTS_PER_HOUR:g}"
        raise ValidationFailed(
            f"A standard is {detail}.",
            details=[{"loc": ["charts_per_hour"], "msg": detail}],
        )
    return round(rate, 2)


def set_standard(
    session: Session, *, actor: Principal, encounter_class: str, charts_per_hour: object
) -> StandardRow:
    """Set (or, with an empty value, clear) the standard of one encounter class; audited."""
    if encounter_class not in CLASSES:
        raise ValidationFailed(
            "Choose one of the encounter classes.",
            details=[{"loc": ["class"], "msg": "one of: " + ", ".join(CLASSES)}],
        )
    rate = parse_rate(charts_per_hour)
    row = session.get(ProductivityStandard, encounter_class)
    before = row.charts_per_hour if row else None
    if rate is None:
        if row is not None:
            session.delete(row)
    else:
        if row is None:
            row = ProductivityStandard(
                encounter_class=encounter_class, charts_per_hour=rate, updated_by=actor.name
            )
        row.charts_per_hour, row.updated_by, row.updated_at = rate, actor.name, utcnow()
        session.add(row)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.settings_admin,
        purpose=None,
        detail=f"productivity-standard class={encounter_class} from={before} to={rate}",
    )
    return StandardRow(
        encounter_class=encounter_class,
        charts_per_hour=rate,
        updated_by=actor.name if rate is not None else None,
        updated_at=utcnow() if rate is not None else None,
    )
