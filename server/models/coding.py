"""Code lines entered by coders, customer-loaded code sets, QA reviews and claims."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class CodeLine(SQLModel, table=True):
    """One diagnosis (kind "dx") or procedure (kind "px") line of a work item.

    Only codes live here (no names, notes or identifiers); `seq` is the 1-based line number
    within its kind, and procedure `dx_pointers` are diagnosis sequence numbers ("1,2").
    """

    __tablename__ = "code_line"
    __table_args__ = (Index("ix_code_line_item", "work_item_id", "kind", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    work_item_id: int = Field(foreign_key="work_item.id")
    kind: str = Field(max_length=2)  # dx | px
    seq: int
    system: str = Field(max_length=10)  # ICD10CM | PCS | CPT | HCPCS
    code: str = Field(max_length=10)
    poa: str | None = Field(default=None, max_length=1)
    modifiers: str = Field(default="", max_length=20)  # "25,59"
    units: int = 1
    dx_pointers: str = Field(default="", max_length=20)  # "1,2"
    charge_cents: int = 0


class CodeSetEntry(SQLModel, table=True):
    """A code of a loaded code set (CPT from the customer's licensed file, HCPCS, PCS)."""

    __tablename__ = "code_set_entry"

    system: str = Field(max_length=10, primary_key=True)
    code: str = Field(max_length=10, primary_key=True)
    description: str = Field(default="", max_length=300)


class QaReview(SQLModel, table=True):
    """A supervisor's decision on a sampled item: accepted, or corrected with a reason."""

    __tablename__ = "qa_review"

    id: int | None = Field(default=None, primary_key=True)
    work_item_id: int = Field(foreign_key="work_item.id", index=True)
    coder_id: int = Field(foreign_key="app_user.id", index=True)
    reviewer_id: int = Field(foreign_key="app_user.id")
    outcome: str = Field(max_length=10)  # accepted | corrected
    reason: str | None = Field(default=None, max_length=500)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ClaimRecord(SQLModel, table=True):
    """A work item billed under the payer's claim number."""

    __tablename__ = "claim_record"

    id: int | None = Field(default=None, primary_key=True)
    work_item_id: int = Field(foreign_key="work_item.id", index=True)
    claim_number: str = Field(max_length=50)
    billed_by: str = Field(max_length=100)  # username or token name
    billed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ClaimReturn(SQLModel, table=True):
    """A biller sending a coded item back to its coder, with the biller's reason."""

    __tablename__ = "claim_return"

    id: int | None = Field(default=None, primary_key=True)
    work_item_id: int = Field(foreign_key="work_item.id", index=True)
    coder_id: int | None = Field(default=None, foreign_key="app_user.id")
    reason: str = Field(max_length=500)
    returned_by: str = Field(max_length=100)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
