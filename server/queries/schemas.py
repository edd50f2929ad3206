"""Physician queries: what a coder asks, what the provider answers, and how both are shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Template = Literal["multiple_choice", "open_ended", "yes_no"]
# A yes/no query is compliant only for these (AHIMA/ACDIS 2022): the coder says which.
Basis = Literal["poa", "documented_elsewhere"]

Option = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Npi = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{10}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndicatorIn(_In):
    """A clinical indicator: the passage [start, end) of one of the chart's documents, or
    (the workbench form) a `quote` found verbatim in it."""

    document: int = Field(ge=1, le=2**31 - 1)
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=1)
    quote: Annotated[str, StringConstraints(max_length=2000)] | None = None


class QueryIn(_In):
    """A physician query as the coder composes it (`POST /api/v1/work/{id}/queries`)."""

    template: Template
    question: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ]
    options: list[Option] = Field(default_factory=list, max_length=12)
    indicators: list[IndicatorIn] = Field(default_factory=list, max_length=20)
    provider: Npi
    basis: Basis | None = None


class AnswerIn(_In):
    """The provider's answer: an option (multiple choice, yes/no) or text (open ended, or
    what "other" means); `totp` signs it (a current authenticator code, password users)."""

    option: Option | None = None
    text: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] | None = None
    totp: Annotated[str, StringConstraints(strip_whitespace=True, max_length=10)] | None = None


class IndicatorView(BaseModel):
    """A quoted clinical indicator with its document and date."""

    document: int
    title: str | None = None
    date: datetime | None = None
    quote: str


class AnswerView(BaseModel):
    """What the provider answered, and when."""

    option: str | None = None
    text: str | None = None
    answered_at: datetime | None = None
    answered_by: str | None = None


class ProviderView(BaseModel):
    """A practitioner of the encounter (public directory data)."""

    npi: str
    name: str


class QueryView(BaseModel):
    """One query opened through an audited door (in memory only, never stored)."""

    id: int
    work_item: int
    status: str
    template: str
    question: str
    options: list[str]
    basis: str | None = None
    indicators: list[IndicatorView]
    provider: ProviderView
    # Who the query is about: just enough for the provider to know the patient.
    patient: dict[str, str | None]
    created_at: datetime
    escalated_at: datetime | None = None
    answer: AnswerView | None = None


class QuerySummary(BaseModel):
    """A query in a list: ids, people and times only (no patient data, nothing sealed)."""

    id: int
    work_item: int
    status: str
    template: str
    provider: str
    provider_name: str
    coder: str | None = None
    created_at: datetime
    answered_at: datetime | None = None
    escalated_at: datetime | None = None
    age_days: float


class QueryCreated(BaseModel):
    """The answer to composing a query."""

    id: int
    status: str
    work_item: int
    item_status: str
