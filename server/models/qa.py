"""QA findings: one row per code-level difference a reviewer found, with its error category,
the coder's response and the supervisor's decision on a rebuttal.

The codes before and after, the reviewer's comment and the coder's and supervisor's reasons
are patient data (tied to an encounter): one sealed JSON value per field under the
encounter's data key. In clear only what counting needs: kind, category, line, ids, status.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow

# open: waiting for the coder; rebutted: waiting for the supervisor. Final: agreed (the
# coder agreed), upheld (the rebuttal refused), overturned (the coder was right).
FINDING_STATUSES = ("open", "agreed", "rebutted", "upheld", "overturned")
FINAL_STATUSES = ("agreed", "upheld", "overturned")
COUNTED_STATUSES = ("agreed", "upheld")  # an error against the coder


class QaFinding(SQLModel, table=True):
    """One difference between the coder's codes and the reviewer's, filed under a category."""

    __tablename__ = "qa_finding"

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="qa_review.id", index=True)
    work_item_id: int = Field(foreign_key="work_item.id", index=True)
    coder_id: int = Field(foreign_key="app_user.id", index=True)
    reviewer_id: int = Field(foreign_key="app_user.id")
    kind: str = Field(max_length=30)  # server.qa.diff.KINDS
    target: str = Field(max_length=10)  # dx | px | abstract
    position: int | None = None  # 1-based line number
    abstract_field: str | None = Field(default=None, max_length=40)
    principal: bool = False  # the principal diagnosis changed
    category: str = Field(max_length=40)  # an id of the shipped taxonomy
    taxonomy_version: str = Field(max_length=20)
    # {"before", "after", "comment"}: sealed, field "detail" of this row.
    sealed_detail: bytes = Field(sa_type=LargeBinary)
    status: str = Field(default="open", max_length=12, index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    responded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sealed_response: bytes | None = Field(default=None, sa_type=LargeBinary)  # coder's reason
    decided_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sealed_decision: bytes | None = Field(default=None, sa_type=LargeBinary)  # supervisor's
