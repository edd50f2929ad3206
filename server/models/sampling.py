"""QA sampling settings of a queue: the new-coder rule, targeted rules and adaptive rates.

The random percentage stays on the queue (`work_queue.qa_sample_percent`). A queue without
a `qa_sampling` row samples as before: coders in training, then the random percentage.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class QaSampling(SQLModel, table=True):
    """One queue's sampling settings (the new-coder rule and the adaptive formula)."""

    __tablename__ = "qa_sampling"

    queue_id: int = Field(foreign_key="work_queue.id", primary_key=True, ondelete="CASCADE")
    # New coders: every chart until their last N reviews reach the target (0: rule off).
    new_coder_charts: int = 0
    target_accuracy: int = 95  # percent, also the adaptive formula's target
    # Adaptive: rate = clamp(base + k_accuracy*(target - accuracy) + k_denial*denial, floor,
    # ceiling), all in percent, over the coder's last `review_window` reviews and coded charts.
    adaptive: bool = False
    base_percent: float = 10.0
    k_accuracy: float = 2.0
    k_denial: float = 1.0
    floor_percent: int = 5
    ceiling_percent: int = 50
    review_window: int = 20
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class QaSampleRule(SQLModel, table=True):
    """A targeted rule: a submitted chart that matches goes to QA (`percent` of the time).

    `kind` is drg | mdc | code | payer_class | charge_over | coder; `value` is what it matches
    (a three-digit MS-DRG, a two-digit MDC, an ICD-10-CM code or category or a procedure
    code, a payer class, an amount in dollars, a username). Rules of a queue apply in
    `position` order.
    """

    __tablename__ = "qa_sample_rule"

    id: int | None = Field(default=None, primary_key=True)
    queue_id: int = Field(foreign_key="work_queue.id", index=True, ondelete="CASCADE")
    position: int = 0
    kind: str = Field(max_length=20)
    value: str = Field(max_length=100)
    percent: int = 100
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
