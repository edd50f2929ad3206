"""Request and response models of the QA API (kinds, categories, ids and counts; never codes)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.coding.abstract import Abstract
from server.coding.schemas import Codes


class FindingIn(BaseModel):
    """The reviewer's category (an id of the shipped taxonomy) and optional comment for one
    derived difference; given in the order the differences are derived."""

    model_config = ConfigDict(extra="forbid")

    category: str | None = Field(default=None, max_length=40)
    comment: str = Field(default="", max_length=500)


class QaDecision(BaseModel):
    """`POST /api/v1/qa/{id}`: accept, or correct (the codes, and the abstract if changed,
    as they should be billed, and one finding per derived difference)."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "correct"]
    reason: str = Field(default="", max_length=500)  # an overall note (sealed)
    codes: Codes | None = None
    abstract: Abstract | None = None
    findings: list[FindingIn] = Field(default_factory=list, max_length=150)


class ResponseIn(BaseModel):
    """`POST /api/v1/qa/findings/{id}/response`: the coder agrees, or rebuts with a reason."""

    model_config = ConfigDict(extra="forbid")

    agree: bool
    reason: str = Field(default="", max_length=500)


class FindingView(BaseModel):
    """A finding as the API lists it (the codes before and after stay sealed)."""

    id: int
    review_id: int
    work_item_id: int
    coder: str
    reviewer: str
    kind: str
    target: str  # dx | px | abstract
    position: int | None
    field: str | None
    principal: bool
    category: str
    category_label: str
    status: str
    at: datetime
    responded_at: datetime | None
    decided_at: datetime | None
    coder_drg: str | None
    qa_drg: str | None
    payment_difference: float | None


class ScoreView(BaseModel):
    """`GET /api/v1/qa/scores`: accuracy in percent (null with nothing to count)."""

    coder: str | None
    records_reviewed: int
    record_accuracy: float | None
    code_accuracy: float | None
    principal_accuracy: float | None
    drg_accuracy: float | None
