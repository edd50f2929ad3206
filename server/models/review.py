"""Compliance flags as cases: the state of an officer's review of one flag, and its steps."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class FlagCase(SQLModel, table=True):
    """The current state of one flag's review (a flag without a row is open).

    A flag is recomputed from the audit log each time; `flag_key` names it stably (its kind
    and first event id, or its kind, user and day for the per-day flags).
    """

    __tablename__ = "flag_case"

    id: int | None = Field(default=None, primary_key=True)
    flag_key: str = Field(max_length=200, unique=True, index=True)
    kind: str = Field(max_length=30)
    subject: str = Field(max_length=100)  # the user the flag is about
    work_item_id: int | None = None
    status: str = Field(default="open", max_length=20)  # open|reviewed|dismissed|escalated
    note: str = Field(default="", max_length=1000)  # about the access; no patient data
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FlagCaseStep(SQLModel, table=True):
    """One change of a case: who set which status, when, with which note."""

    __tablename__ = "flag_case_step"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="flag_case.id", index=True)
    status: str = Field(max_length=20)
    note: str = Field(default="", max_length=1000)
    by: str = Field(max_length=100)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
