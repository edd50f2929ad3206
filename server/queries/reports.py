"""Physician query figures for supervisors: open queries by provider and age, turnaround.

Ids, NPIs, names of providers (public directory data) and times only: nothing sealed is
opened, so nothing here is patient data or needs an audited view.
"""

from __future__ import annotations

import io
import math
from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Session, col, select

from server.csvsafe import SafeWriter
from server.models import EncounterProvider, PhysicianQuery, WorkItem
from server.models.base import utcnow

# Age of an open query in whole days since it was asked.
AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-2", 0, 2),
    ("3-5", 3, 5),
    ("6-10", 6, 10),
    ("11+", 11, None),
)


class Bucket(BaseModel):
    """How many open queries are this old."""

    label: str
    count: int


class ProviderRow(BaseModel):
    """One provider's open queries, by age."""

    provider: str
    provider_name: str
    open: int
    escalated: int
    buckets: list[Bucket]


class Turnaround(BaseModel):
    """How long providers took to answer, in hours (answered queries in the window)."""

    answered: int
    median_hours: float | None
    p90_hours: float | None


class QueryReport(BaseModel):
    """The query report: open by provider and age, and answer turnaround."""

    as_of: datetime
    since: datetime | None
    until: datetime | None
    open_by_provider: list[ProviderRow]
    turnaround: Turnaround


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile `p` (0-100] of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _bucket(days: int) -> str:
    for label, low, high in AGE_BUCKETS:
        if days >= low and (high is None or days <= high):
            return label
    return AGE_BUCKETS[-1][0]


def query_report(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> QueryReport:
    """Open queries by provider and age now; turnaround of those answered in [since, until)."""
    now = now or utcnow()
    rows = session.exec(
        select(PhysicianQuery, EncounterProvider.name)
        .join(WorkItem, col(WorkItem.id) == col(PhysicianQuery.work_item_id))
        .outerjoin(
            EncounterProvider,
            (col(EncounterProvider.encounter_id) == col(WorkItem.encounter_id))
            & (col(EncounterProvider.npi) == col(PhysicianQuery.provider_npi)),
        )
        .where(PhysicianQuery.status == "open")
    ).all()
    by_provider: dict[str, ProviderRow] = {}
    for query, name in rows:
        row = by_provider.setdefault(
            query.provider_npi,
            ProviderRow(
                provider=query.provider_npi,
                provider_name=name or "",
                open=0,
                escalated=0,
                buckets=[Bucket(label=label, count=0) for label, _, _ in AGE_BUCKETS],
            ),
        )
        row.open += 1
        row.escalated += query.escalated_at is not None
        label = _bucket((now - query.created_at).days)
        next(b for b in row.buckets if b.label == label).count += 1
    answered = select(PhysicianQuery.created_at, PhysicianQuery.answered_at).where(
        PhysicianQuery.status == "answered", col(PhysicianQuery.answered_at).is_not(None)
    )
    if since is not None:
        answered = answered.where(col(PhysicianQuery.answered_at) >= since)
    if until is not None:
        answered = answered.where(col(PhysicianQuery.answered_at) < until)
    hours = [
        (done - asked).total_seconds() / 3600
        for asked, done in session.exec(answered).all()
        if done is not None
    ]
    med, p90 = percentile(hours, 50), percentile(hours, 90)
    return QueryReport(
        as_of=now,
        since=since,
        until=until,
        open_by_provider=sorted(by_provider.values(), key=lambda r: (-r.open, r.provider)),
        turnaround=Turnaround(
            answered=len(hours),
            median_hours=round(med, 2) if med is not None else None,
            p90_hours=round(p90, 2) if p90 is not None else None,
        ),
    )


def report_csv(report: QueryReport) -> str:
    """The open-by-provider table as CSV (one row per provider, a column per age bucket)."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(
        ["provider", "provider_name", "open", "escalated", *(b[0] for b in AGE_BUCKETS)]
    )
    for row in report.open_by_provider:
        writer.writerow(
            [
                row.provider,
                row.provider_name,
                row.open,
                row.escalated,
                *(b.count for b in row.buckets),
            ]
        )
    return out.getvalue()
