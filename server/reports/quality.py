"""QA accuracy for the reports, through one function over the QA scores.

A coder's accuracy here is the record accuracy of `server.qa.scores`: final reviews without
an upheld error ÷ final reviews (a review waiting for the coder's answer or a supervisor's
decision is not counted yet), the same figure `/qa/scores` and the sampling rules use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from server.models import QaReview
from server.models.base import utcnow
from server.qa import scores as qa_scores


@dataclass
class Accuracy:
    """One coder's QA results over a window."""

    coder: str
    reviewed: int
    accepted: int

    @property
    def accuracy_percent(self) -> float | None:
        """Reviews without an error as a share of final reviews (None before the first)."""
        return round(100 * self.accepted / self.reviewed, 1) if self.reviewed else None


def accuracy(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    coder_id: int | None = None,
) -> dict[str, Accuracy]:
    """Final QA reviews made on the days of [since, until) per coder (by username): how many,
    and how many without an error."""
    last_day = (until - timedelta(microseconds=1)).date() if until is not None else None
    found = qa_scores.scores(
        session,
        by="coder",
        coder_id=coder_id,
        since=since.date() if since is not None else None,
        until=last_day,
    )
    return {
        s.key: Accuracy(coder=s.key, reviewed=s.records_reviewed, accepted=s.record_ok)
        for s in found
        if s.key is not None
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
