"""QA accuracy for the reports, through one function.

For now a coder's accuracy is the share of their QA reviews that accepted the codes as
submitted (`qa_review.outcome`). Finer scores (record, code, principal and DRG accuracy,
`GET /api/v1/qa/scores`) are being built in `server/qa/scores.py`; when they land, this
function is the one place to switch the reports over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from server.models import QaReview, User
from server.models.base import utcnow


@dataclass
class Accuracy:
    """One coder's QA results over a window."""

    coder: str
    reviewed: int
    accepted: int

    @property
    def accuracy_percent(self) -> float | None:
        """Accepted as a share of reviewed (None before the first review)."""
        return round(100 * self.accepted / self.reviewed, 1) if self.reviewed else None


def accuracy(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    coder_id: int | None = None,
) -> dict[str, Accuracy]:
    """QA reviews made in [since, until) per coder (by username): reviewed and accepted."""
    accepted = func.sum(case((col(QaReview.outcome) == "accepted", 1), else_=0))
    stmt = (
        select(col(User.username), func.count(), accepted)
        .select_from(QaReview)
        .join(User, col(User.id) == col(QaReview.coder_id))
        .group_by(col(User.username))
    )
    if since is not None:
        stmt = stmt.where(col(QaReview.at) >= since)
    if until is not None:
        stmt = stmt.where(col(QaReview.at) < until)
    if coder_id is not None:
        stmt = stmt.where(col(QaReview.coder_id) == coder_id)
    return {
        name: Accuracy(coder=name, reviewed=int(n), accepted=int(ok or 0))
        for name, n, ok in session.execute(stmt).all()
    }


@dataclass
class Finding:
    """One QA review of a coder's chart: when, the outcome, and the DRG before and after."""

    work_item_id: int
    at: datetime
    outcome: str
    coder_drg: str | None
    qa_drg: str | None


def my_findings(
    session: Session, *, coder_id: int, days: int = 90, limit: int = 50
) -> list[Finding]:
    """The QA reviews of a coder's charts over the last `days`, newest first (ids, outcomes
    and DRGs only: the reviewer's reason stays sealed)."""
    rows = session.exec(
        select(QaReview)
        .where(QaReview.coder_id == coder_id, col(QaReview.at) >= utcnow() - timedelta(days=days))
        .order_by(col(QaReview.at).desc(), col(QaReview.id).desc())
        .limit(limit)
    ).all()
    return [
        Finding(
            work_item_id=r.work_item_id,
            at=r.at,
            outcome=r.outcome,
            coder_drg=r.coder_drg,
            qa_drg=r.qa_drg,
        )
        for r in rows
    ]
