"""QA scores: record, code, principal-diagnosis and DRG accuracy, from final decisions only.

A review counts once each of its findings is final (the coder agreed, or a supervisor upheld
or overturned the rebuttal); an accepted chart counts at once. Agreed and upheld findings
are errors; overturned ones are not. Per review, with w = `CHARTDESK_QA_PRINCIPAL_WEIGHT`:

- record accuracy: reviews without an error ÷ reviews;
- code accuracy: 1 − Σ code errors ÷ Σ codes reviewed, where a principal-diagnosis error
  counts w and other code errors 1, and the principal line weighs w among the codes
  reviewed (the coder's lines plus lines the reviewer added); abstract fields are not codes;
- principal accuracy: reviews without a principal-diagnosis error ÷ reviews;
- DRG accuracy: inpatient reviews whose DRG stood (or whose changes were all overturned) ÷
  inpatient reviews.

Figures are percentages with one decimal, None with nothing to count. `recent_accuracy` is
what sampling rules ask about a coder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlmodel import Session, col, select

from server.config import get_settings
from server.errors import ValidationFailed
from server.models import Encounter, QaFinding, QaReview, Queue, User, WorkItem
from server.models.qa import COUNTED_STATUSES, FINAL_STATUSES

GROUPS = ("coder", "queue", "class", "month")


@dataclass
class Score:
    """Accuracy of one group of final reviews (key: coder, queue, class or month)."""

    key: str | None
    records_reviewed: int = 0
    record_ok: int = 0
    codes: float = 0.0
    code_errors: float = 0.0
    principal_ok: int = 0
    drg_reviewed: int = 0
    drg_ok: int = 0
    payment_difference: float = 0.0
    by_category: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def _percent(part: float, whole: float) -> float | None:
        return round(100 * part / whole, 1) if whole else None

    @property
    def record_accuracy(self) -> float | None:
        """Reviews without an error, percent."""
        return self._percent(self.record_ok, self.records_reviewed)

    @property
    def code_accuracy(self) -> float | None:
        """Weighted codes right, percent."""
        return self._percent(self.codes - self.code_errors, self.codes)

    @property
    def principal_accuracy(self) -> float | None:
        """Reviews whose principal diagnosis stood, percent."""
        return self._percent(self.principal_ok, self.records_reviewed)

    @property
    def drg_accuracy(self) -> float | None:
        """Inpatient reviews whose DRG stood, percent."""
        return self._percent(self.drg_ok, self.drg_reviewed)


@dataclass(frozen=True)
class _Reviewed:
    review: QaReview
    coder: str
    queue: str
    encounter_class: str


def _day_range(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    if since and until and since > until:
        raise ValidationFailed(
            "The start date is after the end date.",
            details=[{"loc": ["query", "since"], "msg": "after until"}],
        )
    start = datetime.combine(since, time.min, tzinfo=UTC) if since else None
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC) if until else None
    return start, end


def _reviews(
    session: Session,
    *,
    coder_id: int | None,
    since: date | None,
    until: date | None,
) -> list[_Reviewed]:
    start, end = _day_range(since, until)
    stmt = (
        select(QaReview, User.username, Queue.name, Encounter.encounter_class)
        .join(User, col(User.id) == col(QaReview.coder_id))
        .join(WorkItem, col(WorkItem.id) == col(QaReview.work_item_id))
        .join(Queue, col(Queue.id) == col(WorkItem.queue_id))
        .join(Encounter, col(Encounter.id) == col(WorkItem.encounter_id))
        .order_by(col(QaReview.at).desc(), col(QaReview.id).desc())
    )
    if coder_id is not None:
        stmt = stmt.where(QaReview.coder_id == coder_id)
    if start is not None:
        stmt = stmt.where(col(QaReview.at) >= start)
    if end is not None:
        stmt = stmt.where(col(QaReview.at) < end)
    return [
        _Reviewed(review=r, coder=u, queue=q, encounter_class=c)
        for r, u, q, c in session.exec(stmt).all()
    ]


def _findings(session: Session, review_ids: Iterable[int]) -> dict[int, list[QaFinding]]:
    ids = list(review_ids)
    out: dict[int, list[QaFinding]] = {}
    for n in range(0, len(ids), 500):
        rows = session.exec(
            select(QaFinding).where(col(QaFinding.review_id).in_(ids[n : n + 500]))
        ).all()
        for f in rows:
            out.setdefault(f.review_id, []).append(f)
    return out


def _final(findings: list[QaFinding]) -> bool:
    return all(f.status in FINAL_STATUSES for f in findings)


def _add(score: Score, reviewed: _Reviewed, findings: list[QaFinding], weight: float) -> None:
    review = reviewed.review
    errors = [f for f in findings if f.status in COUNTED_STATUSES]
    legacy = review.outcome == "corrected" and not findings  # before the worksheet
    score.records_reviewed += 1
    score.record_ok += not errors and not legacy
    if review.codes_reviewed:
        score.codes += review.codes_reviewed + (weight - 1)
        code_errors = sum(weight if f.principal else 1 for f in errors if f.target != "abstract")
        score.code_errors += min(code_errors, review.codes_reviewed + (weight - 1))
    score.principal_ok += not any(f.principal for f in errors)
    if review.coder_drg or review.qa_drg:
        score.drg_reviewed += 1
        score.drg_ok += review.coder_drg == review.qa_drg or (not errors and not legacy)
    if errors and review.payment_difference:
        score.payment_difference += review.payment_difference
    for f in errors:
        score.by_category[f.category] = score.by_category.get(f.category, 0) + 1


def _key(reviewed: _Reviewed, by: str | None) -> str | None:
    if by == "coder":
        return reviewed.coder
    if by == "queue":
        return reviewed.queue
    if by == "class":
        return reviewed.encounter_class
    if by == "month":
        return reviewed.review.at.strftime("%Y-%m")
    return None


def scores(
    session: Session,
    *,
    by: str | None = None,
    coder_id: int | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[Score]:
    """Accuracy over final reviews (dates of review, inclusive), one Score per group
    (`by`: coder, queue, class or month; None: one Score for all), sorted by key."""
    if by is not None and by not in GROUPS:
        raise ValidationFailed(
            "Unknown grouping.", details=[{"loc": ["query", "by"], "msg": "|".join(GROUPS)}]
        )
    weight = get_settings().qa_principal_weight
    reviewed = _reviews(session, coder_id=coder_id, since=since, until=until)
    findings = _findings(session, (r.review.id for r in reviewed if r.review.id is not None))
    groups: dict[str | None, Score] = {}
    for r in reviewed:
        mine = findings.get(r.review.id or 0, [])
        if not _final(mine):
            continue  # waiting for the coder or a supervisor: not counted yet
        key = _key(r, by)
        _add(groups.setdefault(key, Score(key=key)), r, mine, weight)
    if by is None and not groups:
        return [Score(key=None)]
    return [groups[k] for k in sorted(groups, key=lambda k: k or "")]


def recent_counts(session: Session, *, coder_id: int, last: int) -> tuple[int, int]:
    """A coder's last `last` final reviews: (how many, how many without an error)."""
    if last <= 0:
        return 0, 0
    weight = get_settings().qa_principal_weight
    score = Score(key=None)
    batch, offset = max(last * 2, 20), 0
    while score.records_reviewed < last:
        stmt = (
            select(QaReview)
            .where(QaReview.coder_id == coder_id)
            .order_by(col(QaReview.at).desc(), col(QaReview.id).desc())
            .offset(offset)
            .limit(batch)
        )
        reviews = session.exec(stmt).all()
        if not reviews:
            break
        findings = _findings(session, (r.id for r in reviews if r.id is not None))
        for review in reviews:
            mine = findings.get(review.id or 0, [])
            if _final(mine):
                _add(score, _Reviewed(review, "", "", ""), mine, weight)
                if score.records_reviewed >= last:
                    break
        offset += batch
    return score.records_reviewed, score.record_ok


def recent_accuracy(session: Session, *, coder_id: int, last: int = 20) -> float | None:
    """A coder's record accuracy (percent) over their `last` final reviews (None: none yet).

    For sampling rules: a coder whose recent accuracy falls gets more charts reviewed."""
    reviewed, clean = recent_counts(session, coder_id=coder_id, last=last)
    return round(100 * clean / reviewed, 1) if reviewed else None
