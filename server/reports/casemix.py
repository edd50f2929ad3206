"""Inpatient reports for supervisors (issue 16): case-mix index, CC/MCC capture rate and
DRG shifts, by coder, queue or month.

They read only clear figures: the final MS-DRG and its grouper version on each work item,
the counts of secondaries acting as CC and as MCC in that grouping (kept at submit, no
codes), and the DRGs of each QA review. No patient data goes in or out, except a QA
reviewer's sealed reason for a shift, opened one at a time through the audited door.

- **Case-mix index** (CMI): the mean relative weight (CMS Table 5 of the grouper version's
  fiscal year) of the final DRGs of the inpatient stays submitted in the window (by their
  submit time, `coded_at`); stays whose version has no weight table are left out of the
  mean and counted apart.
- **CC/MCC capture rate**: the share of those stays whose final grouping has at least one
  secondary diagnosis acting as CC or MCC (not excluded by the principal). Stays submitted
  before the counts were kept are not in the rate.
- **DRG shifts**: baseline (the first grouping) to final (at submit), by the coder, with
  the reason where one exists (a physician query answered before submit: its answer is
  sealed and opens through the same audited door); final to after QA, by the reviewer, with
  the QA findings' categories (clear) and the reviewer's sealed reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, text
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.db import is_sqlite
from server.edits.drg import weight_of
from server.errors import NotFound, ValidationFailed
from server.models import PhysicianQuery, QaFinding, QaReview, Queue, User, WorkItem
from server.models.base import utcnow
from server.records import service as records_service
from server.records.service import ItemKey
from server.reports.service import check_window, day_start, hospital_zone

GROUPINGS = {"coder": "Coder", "queue": "Queue", "month": "Month"}
UNKNOWN = "(none)"


def check_grouping(by: str) -> None:
    """422 unless `by` is coder, queue or month."""
    if by not in GROUPINGS:
        raise ValidationFailed(
            "Group by coder, queue or month.",
            details=[{"loc": ["by"], "msg": "one of: coder, queue, month"}],
        )


def default_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The current month and the eleven before it, in the hospital's zone."""
    today = (now or utcnow()).astimezone(hospital_zone()).date()
    first = today.replace(day=1)
    for _ in range(11):
        first = (first - timedelta(days=1)).replace(day=1)
    return day_start(first), day_start(today + timedelta(days=1))


def window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """The window asked for (default: the last 12 months); 422 if backwards or over a year."""
    if since is None and until is None:
        return default_window()
    return check_window(since, until)


def _month_starts(since: datetime, until: datetime) -> list[date]:
    zone = hospital_zone()
    first = since.astimezone(zone).date().replace(day=1)
    last = until.astimezone(zone).date()
    months = []
    while first <= last:
        months.append(first)
        first = (first + timedelta(days=32)).replace(day=1)
    return months


@dataclass
class MixFigures:
    """One group's stays: case-mix index and CC/MCC capture."""

    key: str
    stays: int = 0  # inpatient stays with a final DRG
    weighted: int = 0  # of which the DRG's weight is known
    weight_sum: float = 0.0
    counted: int = 0  # stays whose CC/MCC counts were kept at submit
    captured: int = 0  # of which at least one CC or MCC acts

    @property
    def cmi(self) -> float | None:
        """Mean relative weight of the final DRGs (None: no weight known)."""
        return round(self.weight_sum / self.weighted, 4) if self.weighted else None

    @property
    def capture_rate(self) -> float | None:
        """Stays with a CC or MCC as a percentage of the stays counted (None: none)."""
        return round(100 * self.captured / self.counted, 1) if self.counted else None

    def add(self, *, n: int, weight: float | None, counted: bool, captured: bool) -> None:
        """Add `n` stays of one final DRG."""
        self.stays += n
        if weight is not None:
            self.weighted += n
            self.weight_sum += weight * n
        if counted:
            self.counted += n
            self.captured += n if captured else 0


@dataclass
class MixReport:
    """CMI and capture per group over [since, until), and in all."""

    since: datetime
    until: datetime
    by: str
    groups: list[MixFigures]
    total: MixFigures = field(default_factory=lambda: MixFigures(key="all"))


def case_mix(
    session: Session,
    *,
    by: str = "coder",
    since: datetime | None = None,
    until: datetime | None = None,
) -> MixReport:
    """Case-mix index and CC/MCC capture rate of inpatient stays submitted in the window,
    per coder, queue or month (of the submit, in the hospital's zone).

    One grouped query (per group key, final DRG and version, and CC/MCC capture); the
    weights are summed here from Table 5.
    """
    check_grouping(by)
    since, until = window(since, until)
    coder = aliased(User)
    if by == "month":
        months = _month_starts(since, until)
        whens = [(col(WorkItem.coded_at) >= day_start(m), m.strftime("%Y-%m")) for m in months]
        key: Any = case(*reversed(whens), else_=months[0].strftime("%Y-%m"))
    elif by == "queue":
        key = col(Queue.name)
    else:
        key = col(coder.username)
    acting = func.coalesce(col(WorkItem.final_cc_count), 0) + func.coalesce(
        col(WorkItem.final_mcc_count), 0
    )
    captured = case((acting > 0, 1), else_=0)
    counted = case((col(WorkItem.final_cc_count).is_(None), 0), else_=1)
    stmt = (
        sa_select(
            key,
            col(WorkItem.final_drg),
            col(WorkItem.final_drg_version),
            counted,
            captured,
            func.count(),
        )
        .select_from(WorkItem)
        .where(
            col(WorkItem.coded_at) >= since,
            col(WorkItem.coded_at) < until,
            # Only an inpatient stay is grouped (outpatient never has a DRG), so the final
            # DRG alone picks the stays: no join to the encounter for its class.
            col(WorkItem.final_drg).is_not(None),
        )
        .group_by(key, col(WorkItem.final_drg), col(WorkItem.final_drg_version), counted, captured)
    )
    if by == "queue":
        stmt = stmt.join(Queue, col(Queue.id) == col(WorkItem.queue_id))
    elif by == "coder":
        stmt = stmt.outerjoin(coder, col(coder.id) == col(WorkItem.coded_by_id))
    if not is_sqlite(session):
        session.execute(text("SET LOCAL jit = off"))  # a grouped scan: JIT costs more than it saves
    groups: dict[str, MixFigures] = {}
    total = MixFigures(key="all")
    for group_key, drg, version, is_counted, is_captured, n in session.execute(stmt).all():
        name = str(group_key) if group_key else UNKNOWN
        weight = weight_of(drg, version)
        for figures in (groups.setdefault(name, MixFigures(key=name)), total):
            figures.add(
                n=int(n), weight=weight, counted=bool(is_counted), captured=bool(is_captured)
            )
    ordered = sorted(groups.values(), key=lambda g: (g.key == UNKNOWN, g.key))
    return MixReport(since=since, until=until, by=by, groups=ordered, total=total)


# ---------------------------------------------------------------- DRG shifts


@dataclass
class Shift:
    """One DRG shift: baseline to final (by the coder) or final to after QA (by a reviewer)."""

    kind: str  # "final" (baseline -> final) or "qa" (final -> after QA)
    work_item_id: int
    at: datetime | None
    from_drg: str
    to_drg: str
    from_weight: float | None
    to_weight: float | None
    coder: str
    by: str
    why: str
    review_id: int | None = None  # a QA shift: its sealed reason opens on demand
    query_id: int | None = None  # a coder's shift after a query answered: the answer on demand

    @property
    def weight_change(self) -> float | None:
        """The change in relative weight (None: a weight unknown)."""
        if self.from_weight is None or self.to_weight is None:
            return None
        return round(self.to_weight - self.from_weight, 4)


SHIFT_KINDS = {"final": "Baseline → final", "qa": "Final → after QA"}


@dataclass
class ShiftReport:
    """Every DRG shift in [since, until), newest first, and how many of each kind."""

    since: datetime
    until: datetime
    shifts: list[Shift]

    def count(self, kind: str) -> int:
        """Shifts of one kind."""
        return sum(s.kind == kind for s in self.shifts)

    def unweighted(self, kind: str) -> int:
        """Shifts of one kind whose change in weight is not known (a DRG without a weight)."""
        return sum(s.kind == kind and s.weight_change is None for s in self.shifts)

    def net_weight(self, kind: str) -> float:
        """The sum of the weight changes of one kind (known weights only)."""
        return round(sum(s.weight_change or 0.0 for s in self.shifts if s.kind == kind), 4)


SHIFT_LIMIT = 2000


def drg_shifts(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> ShiftReport:
    """DRG shifts of the window: baseline to final at submit (`coded_at` in the window), and
    final to after QA (the review's time in the window); at most 2000 of each, newest first."""
    since, until = window(since, until)
    coder = aliased(User)
    reviewer = aliased(User)
    finals = session.execute(
        sa_select(
            col(WorkItem.id),
            col(WorkItem.coded_at),
            col(WorkItem.baseline_drg),
            col(WorkItem.baseline_drg_version),
            col(WorkItem.final_drg),
            col(WorkItem.final_drg_version),
            col(coder.username),
        )
        .outerjoin(coder, col(coder.id) == col(WorkItem.coded_by_id))
        .where(
            col(WorkItem.coded_at) >= since,
            col(WorkItem.coded_at) < until,
            col(WorkItem.baseline_drg).is_not(None),
            col(WorkItem.final_drg).is_not(None),
            col(WorkItem.baseline_drg) != col(WorkItem.final_drg),
        )
        .order_by(col(WorkItem.coded_at).desc(), col(WorkItem.id).desc())
        .limit(SHIFT_LIMIT)
    ).all()
    answered = _answered_queries(session, [(row[0], row[1]) for row in finals])
    shifts = [
        Shift(
            kind="final",
            work_item_id=item_id,
            at=at,
            from_drg=base,
            to_drg=final,
            from_weight=weight_of(base, base_v),
            to_weight=weight_of(final, final_v),
            coder=name or UNKNOWN,
            by=name or UNKNOWN,
            why=(
                f"Physician query #{answered[item_id]} answered before submit"
                if item_id in answered
                else "Coding after the first grouping (codes added or changed before submit)"
            ),
            query_id=answered.get(item_id),
        )
        for item_id, at, base, base_v, final, final_v, name in finals
    ]
    reviews = session.execute(
        sa_select(
            col(QaReview.id),
            col(QaReview.work_item_id),
            col(QaReview.at),
            col(QaReview.coder_drg),
            col(QaReview.qa_drg),
            col(WorkItem.final_drg_version),
            col(coder.username),
            col(reviewer.username),
            col(QaReview.outcome),
        )
        .join(WorkItem, col(WorkItem.id) == col(QaReview.work_item_id))
        .join(coder, col(coder.id) == col(QaReview.coder_id))
        .join(reviewer, col(reviewer.id) == col(QaReview.reviewer_id))
        .where(
            col(QaReview.at) >= since,
            col(QaReview.at) < until,
            col(QaReview.coder_drg).is_not(None),
            col(QaReview.qa_drg).is_not(None),
            col(QaReview.coder_drg) != col(QaReview.qa_drg),
        )
        .order_by(col(QaReview.at).desc(), col(QaReview.id).desc())
        .limit(SHIFT_LIMIT)
    ).all()
    categories = _categories(session, [row[0] for row in reviews])
    shifts += [
        Shift(
            kind="qa",
            work_item_id=item_id,
            at=at,
            from_drg=was,
            to_drg=now,
            from_weight=weight_of(was, version),
            to_weight=weight_of(now, version),
            coder=coder_name,
            by=reviewer_name,
            why=f"QA {outcome}"
            + (f": {categories[review_id]}" if categories.get(review_id) else ""),
            review_id=review_id,
        )
        for review_id, item_id, at, was, now, version, coder_name, reviewer_name, outcome in reviews
    ]
    shifts.sort(key=lambda s: (s.at is not None, s.at), reverse=True)
    return ShiftReport(since=since, until=until, shifts=shifts)


def _answered_queries(session: Session, items: list[tuple[int, datetime | None]]) -> dict[int, int]:
    """Each item's latest physician query answered before its submit (item id -> query id)."""
    if not items:
        return {}
    submitted = dict(items)
    rows = session.execute(
        sa_select(
            col(PhysicianQuery.work_item_id),
            col(PhysicianQuery.id),
            col(PhysicianQuery.answered_at),
        )
        .where(
            col(PhysicianQuery.work_item_id).in_(list(submitted)),
            col(PhysicianQuery.answered_at).is_not(None),
            col(PhysicianQuery.sealed_answer).is_not(None),
        )
        .order_by(col(PhysicianQuery.answered_at), col(PhysicianQuery.id))
    ).all()
    found: dict[int, int] = {}
    for item_id, query_id, answered_at in rows:
        at = submitted.get(item_id)
        if at is None or answered_at <= at:
            found[item_id] = query_id  # the latest wins (ordered oldest first)
    return found


def _categories(session: Session, review_ids: list[int]) -> dict[int, str]:
    """Each review's finding categories in words (clear: the taxonomy's labels), in order."""
    from server.qa.taxonomy import taxonomy  # the QA domain's shipped taxonomy

    if not review_ids:
        return {}
    labels: dict[int, list[str]] = {}
    for review_id, category in session.execute(
        sa_select(col(QaFinding.review_id), col(QaFinding.category))
        .where(col(QaFinding.review_id).in_(review_ids))
        .order_by(col(QaFinding.id))
    ).all():
        label = taxonomy().label(category) if category else ""
        seen = labels.setdefault(review_id, [])
        if label and label not in seen:
            seen.append(label)
    return {r: ", ".join(v) for r, v in labels.items() if v}


def _opened_behind_shift(
    session: Session,
    *,
    actor: Principal,
    work_item_id: int | None,
    detail: str,
    refused: tuple[str, str] | None,
    reveal: Callable[[ItemKey], str],
) -> str:
    """One sealed field behind a DRG shift, through the audited door: a view of the item,
    purpose HOPERAT, audited before `reveal` opens it. `refused`: nothing to open, as (the
    refusal's audit detail, the 404's message)."""
    if refused is not None or work_item_id is None:
        why, message = refused or (f"{detail}: no item", "No such item.")
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.view_record,
            work_item_id=work_item_id,
            purpose="HOPERAT",
            detail=why,
        )
        raise NotFound(message)
    key = records_service.open_for_use(
        session,
        actor=actor,
        work_item_id=work_item_id,
        action=audit_service.Action.view_record,
        purpose="HOPERAT",
        detail=detail,
    )
    return reveal(key)


def query_answer(session: Session, *, actor: Principal, query_id: int) -> str:
    """The provider's answer behind a baseline-to-final DRG shift (audited, as QA reasons)."""
    query = session.get(PhysicianQuery, query_id)
    answered = query is not None and query.sealed_answer is not None
    return _opened_behind_shift(
        session,
        actor=actor,
        work_item_id=query.work_item_id if query else None,
        detail=f"drg-shift reason query={query_id}",
        refused=None
        if answered
        else (f"drg-shift query={query_id}: no answered query", "No such answered query."),
        reveal=lambda key: _answer(key=key, query=query),  # type: ignore[arg-type]
    )


def _answer(*, key: ItemKey, query: PhysicianQuery) -> str:
    """A query's sealed answer (option, text), opened with the key of the audited use."""
    assert query.id is not None  # noqa: S101
    assert query.sealed_answer is not None  # noqa: S101
    raw = key.open(
        table=PhysicianQuery.__tablename__,
        row_id=query.id,
        field="answer",
        sealed=query.sealed_answer,
    )
    return " — ".join(str(raw.get(k)) for k in ("option", "text") if raw.get(k))


def shift_reason(session: Session, *, actor: Principal, review_id: int) -> str:
    """A QA reviewer's reason for a DRG shift (audited before it is opened; none: "")."""
    review = session.get(QaReview, review_id)
    shifted = review is not None and bool(review.coder_drg) and review.coder_drg != review.qa_drg
    if shifted and review is not None and review.sealed_reason is None:
        return ""
    return _opened_behind_shift(
        session,
        actor=actor,
        work_item_id=review.work_item_id if review else None,
        detail=f"drg-shift reason review={review_id}",
        refused=None
        if shifted
        else (f"drg-shift reason review={review_id}: no such shift", "No such DRG shift."),
        reveal=lambda key: _reason(key=key, review=review),  # type: ignore[arg-type]
    )


def _reason(*, key: ItemKey, review: QaReview) -> str:
    """The sealed reason of a review, opened with the key of the audited use."""
    assert review.id is not None  # noqa: S101
    assert review.sealed_reason is not None  # noqa: S101
    text = key.open(
        table=QaReview.__tablename__, row_id=review.id, field="reason", sealed=review.sealed_reason
    )
    return str(text)
